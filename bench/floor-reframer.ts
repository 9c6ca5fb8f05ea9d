/**
 * The floor of issue 16: the least any Node implementation of the service's streaming job must
 * spend. A `node:http` server that, for each `POST /`, requests the paced upstream over a
 * keep-alive agent and re-frames its stream as the service's UI message stream (`start`,
 * `text-start`, one `text-delta` per content delta, `text-end`, `finish`, `[DONE]`), in the
 * service's SSE framing (`id: n\ndata: {json}\n\n`), so the load generator counts it alike.
 *
 * Per upstream chunk: split the SSE lines, `JSON.parse` each data line once, one `write`.
 * No database, auth, limits, resume or logs; the request body is read and dropped, and the
 * upstream body is built once (a real turn builds it from the request: the service pays that).
 *
 * Compiled to plain JavaScript and forked by run.ts (floor-process.ts), with the upstream as a
 * `TargetSpec` (JSON) in its first argument; it must import nothing but Node's modules and
 * types. It announces its port over IPC and exits when the orchestrator goes away.
 */
import * as http from 'node:http';
import type { FromFloor, TargetSpec } from './protocol';

/** The service's UI message stream headers (src/http/sse-response.ts), so both send the same bytes. */
const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  'x-vercel-ai-ui-message-stream': 'v1',
};

const UPSTREAM_BODY = JSON.stringify({
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Say something short.' },
  ],
  stream: true,
  stream_options: { include_usage: true },
});

interface UpstreamChunk {
  choices?: Array<{ delta?: { content?: string | null }; finish_reason?: string | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

/** The re-framing state of one stream. */
interface Reframing {
  /** Last SSE id sent. */
  id: number;
  textStarted: boolean;
  finishReason: string | null;
  usage: UpstreamChunk['usage'];
  /** The part of the last chunk after its last line end: a line split across chunks. */
  partialLine: string;
}

const frame = (state: Reframing, json: string): string => `id: ${++state.id}\ndata: ${json}\n\n`;

/** The UI message frames one upstream chunk's lines make, and whether `[DONE]` was among them. */
function reframe(state: Reframing, chunk: string): { out: string; done: boolean } {
  const lines = (state.partialLine + chunk).split('\n');
  state.partialLine = lines.pop()!;
  let out = state.id === 0 ? frame(state, '{"type":"start"}') : '';
  for (const line of lines) {
    if (!line.startsWith('data: ')) continue; // blank lines end events; the upstream sends no other field
    const data = line.slice(6);
    if (data === '[DONE]') {
      if (state.textStarted) out += frame(state, '{"type":"text-end","id":"text-0"}');
      out += frame(state, JSON.stringify({ type: 'finish', finishReason: state.finishReason, messageMetadata: { usage: state.usage } }));
      return { out: `${out}id: ${++state.id}\ndata: [DONE]\n\n`, done: true };
    }
    const parsed = JSON.parse(data) as UpstreamChunk;
    if (parsed.usage) state.usage = parsed.usage;
    const choice = parsed.choices?.[0];
    if (!choice) continue;
    if (choice.finish_reason) state.finishReason = choice.finish_reason;
    const content = choice.delta?.content;
    if (!content) continue; // the role frame and the finish frame carry none
    if (!state.textStarted) {
      state.textStarted = true;
      out += frame(state, '{"type":"text-start","id":"text-0"}');
    }
    out += frame(state, JSON.stringify({ type: 'text-delta', id: 'text-0', delta: content }));
  }
  return { out, done: false };
}

function serve(upstream: TargetSpec, agent: http.Agent, request: http.IncomingMessage, response: http.ServerResponse): void {
  request.resume();
  if (request.method !== 'POST') {
    response.writeHead(404).end(); // the load generator's socket priming
    return;
  }
  const upstreamRequest = http.request({
    agent,
    host: '127.0.0.1',
    port: upstream.port,
    method: 'POST',
    path: upstream.path,
    headers: { ...upstream.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(UPSTREAM_BODY) },
  });
  // The client went away before the end: stop the upstream's stream. After a normal end the
  // upstream request is left alone, so that its socket goes back to the agent's pool.
  response.on('close', () => {
    if (!response.writableFinished) upstreamRequest.destroy();
  });
  upstreamRequest.on('error', () => response.destroy());
  upstreamRequest.on('response', (upstreamResponse) => {
    if (upstreamResponse.statusCode !== 200) {
      upstreamResponse.resume();
      response.writeHead(502).end();
      return;
    }
    response.writeHead(200, SSE_HEADERS);
    upstreamResponse.setEncoding('utf8');
    const state: Reframing = { id: 0, textStarted: false, finishReason: null, usage: null, partialLine: '' };
    let ended = false;
    upstreamResponse.on('data', (chunk: string) => {
      if (ended) return;
      let reframed: ReturnType<typeof reframe>;
      try {
        reframed = reframe(state, chunk);
      } catch {
        response.destroy(); // a malformed upstream frame: the fake never sends one
        return;
      }
      if (reframed.done) {
        ended = true;
        response.end(reframed.out);
      } else if (reframed.out.length > 0) {
        response.write(reframed.out);
      }
    });
    // Ended without [DONE]: the client sees the stream cut short.
    upstreamResponse.on('end', () => {
      if (!ended) response.destroy();
    });
  });
  upstreamRequest.end(UPSTREAM_BODY);
}

function main(): void {
  if (!process.send) throw new Error('floor-reframer.ts is started by bench/run.ts (it needs an IPC channel)');
  const upstream = JSON.parse(process.argv[2] ?? '') as TargetSpec;
  // As in the load generator: `timeout` makes the Agent honour the upstream's `Keep-Alive:
  // timeout=5` hint (it ignores it without one), and maxFreeSockets above the largest round
  // keeps the sockets of a c=1000 round (the default, 256, would close most of them).
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 4096, timeout: 120_000 });
  const server = http.createServer((request, response) => serve(upstream, agent, request, response));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the floor has no TCP port');
    process.send?.({ type: 'ready', port: address.port } satisfies FromFloor);
  });
  // The orchestrator died or finished: leave at once (open sockets die with the process).
  process.on('disconnect', () => process.exit(0));
  // An exit, not a kill: with BENCH_CPU_PROF, Node writes the floor's profile as it exits.
  process.on('SIGTERM', () => process.exit(0));
}

main();
