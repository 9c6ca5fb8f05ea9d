/**
 * `npm run bench:trace`: where the service's added time to first token
 * goes at c=1. Runs 250 turns one at a time against the production build (default config, fresh
 * SQLite file, or with BENCH_DATABASE_URL a fresh PostgreSQL database on that server; auth on) and a fake upstream streaming 16 deltas 2 ms apart, with
 * bench/trace-hooks.cjs loaded into the service, then prints the median time from a request's
 * arrival to the start and end of each step of the turn.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import path from 'node:path';
import { startFakeUpstream } from '../__tests__/support/fake-upstream';
import { createBenchDatabase, dropBenchDatabase } from './postgresql-server';
import { stopAll } from './processes';
import { startService } from './service-process';

const TURNS = 250;

async function main(): Promise<void> {
  const tmp = path.join(__dirname, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const runDir = mkdtempSync(path.join(tmp, 'trace-'));
  const traceOut = path.join(runDir, 'trace.json');
  const fake = await startFakeUpstream({ host: '127.0.0.1', port: 0 });
  let databaseUrl: string | undefined;
  try {
    fake.setDefault({ kind: 'stream', content: Array.from({ length: 16 }, () => ' Lorem'), delayMs: 2 });
    process.env.BENCH_NODE_FLAGS = `--require ${path.join(__dirname, 'trace-hooks.cjs')}`;
    process.env.TRACE_OUT = traceOut;
    const serverUrl = process.env.BENCH_DATABASE_URL || undefined;
    databaseUrl = serverUrl ? await createBenchDatabase(serverUrl, 'trace') : undefined;
    const service = await startService(runDir, fake, { databaseUrl });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < TURNS; i++) {
      if (i % 50 === 0) fake.requests.length = 0;
      await oneTurn(agent, service.port, service.apiKey);
    }
    service.child.kill('SIGUSR2');
    for (let waited = 0; !existsSync(traceOut) && waited < 5_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    const { turns, medians } = JSON.parse(readFileSync(traceOut, 'utf8')) as { turns: number; medians: Array<{ step: string; ms: number }> };
    console.log(`Median over ${turns} turns, ms from the request's arrival (> start, < end of a step):\n`);
    for (const { step, ms } of medians) console.log(`${ms.toFixed(3).padStart(8)}  ${step}`);
  } finally {
    await stopAll(2_000);
    if (databaseUrl) await dropBenchDatabase(databaseUrl);
    await fake.close();
    rmSync(runDir, { recursive: true, force: true });
  }
}

function oneTurn(agent: http.Agent, port: number, apiKey: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { agent, host: '127.0.0.1', port, path: '/api/chat', method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' } },
      (response) => {
        response.resume();
        response.on('end', resolve);
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(JSON.stringify({ chatId: randomUUID(), messages: [{ role: 'user', content: 'Say something short.' }] }));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
