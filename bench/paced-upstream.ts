/**
 * The paced fake Azure OpenAI upstream, in its own process so that its CPU is not the service's
 * or the load generator's. It is the tests' wire-faithful fake (Azure frames, usage chunk,
 * [DONE]) with a control channel on the IPC pipe: the orchestrator sets the default stream
 * script (deltas, gap, text) before each scenario. The port is announced over IPC.
 *
 * Run by run.ts with child_process.fork; it exits when the orchestrator goes away.
 */
import { startFakeUpstream } from '../__tests__/support/fake-upstream';
import type { FromUpstream, ToUpstream, UpstreamScript } from './protocol';

function send(message: FromUpstream): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('paced-upstream.ts is started by bench/run.ts (it needs an IPC channel)');
  const fake = await startFakeUpstream({ host: '127.0.0.1', port: 0 });

  const apply = (script: UpstreamScript): void => {
    const content = Array.from({ length: script.deltas }, (_, i) => script.words[i % script.words.length]!);
    fake.setDefault({ kind: 'stream', content, delayMs: script.delayMs });
    // The fake records every request (headers and body) for tests; a benchmark would only grow
    // its heap and GC work round after round, which would slow the floor down.
    fake.requests.length = 0;
  };

  process.on('message', (message: ToUpstream) => {
    if (message.type === 'script') {
      apply(message.script);
      send({ type: 'script-set', script: message.script });
    }
  });
  // The orchestrator died or finished: close sockets and leave, never linger.
  process.on('disconnect', () => {
    void fake.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });

  send({ type: 'ready', url: fake.url, apiKey: fake.apiKey, deployment: fake.deployment });
}

main().catch((error: unknown) => {
  process.stderr.write(`paced upstream failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
