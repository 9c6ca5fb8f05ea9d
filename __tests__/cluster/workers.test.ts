/**
 * `[server] workers = 2`: one command starts a primary and two worker processes sharing the port,
 * coordinated through PostgreSQL and Redis like separate instances.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, openSse } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { createPostgresDatabase, dropPostgresDatabases, postgresUnreachable } from '../support/postgres-database';
import { redisUnreachable, removeRedisKeys, TEST_REDIS_URL, uniqueRedisPrefix } from '../support/redis-server';
import { FIRST_KEY_LINE, serviceEnvironment, startServer, stopServers, type LogLine, type ServerProcess } from '../support/server-process';
import { sampleValue } from '../support/prometheus-text';
import { parseSse } from '../support/sse';

const skipped = postgresUnreachable() ?? redisUnreachable();
const describeWorkers = skipped ? describe.skip : describe;

let directory: string;
let databaseUrl: string;
let prefix: string;
let upstream: FakeUpstream;

beforeAll(async () => {
  if (skipped) return;
  directory = mkdtempSync(path.join(tmpdir(), 'workers-'));
  databaseUrl = await createPostgresDatabase();
  prefix = uniqueRedisPrefix();
  upstream = await startFakeUpstream();
});

afterAll(async () => {
  if (skipped) return;
  await stopServers();
  await upstream.close();
  await dropPostgresDatabases([databaseUrl]);
  await removeRedisKeys(TEST_REDIS_URL, prefix);
  rmSync(directory, { recursive: true, force: true });
});

/** Request lines served by each worker number. */
function servedBy(logs: LogLine[]): Set<number> {
  return new Set(logs.filter((line) => line.msg === 'request completed' && typeof line.worker === 'number').map((line) => line.worker as number));
}

describeWorkers('[server] workers = 2', () => {
  test('two workers share the port and each other\'s replies; a worker that dies is replaced; SIGTERM stops them all', async () => {
    const configPath = path.join(directory, 'config.toml');
    writeFileSync(configPath, `[cluster]\nredis_prefix = "${prefix}"\nlease_seconds = 2\n[openai]\nmax_retries = 0\n`);
    const primary: ServerProcess = startServer(
      directory,
      serviceEnvironment({
        PORT: '0',
        HOST: '127.0.0.1',
        WORKERS: '2',
        DATABASE_URL: databaseUrl,
        REDIS_URL: TEST_REDIS_URL,
        INSTANCE_ID: 'box',
        CONFIG_PATH: configPath,
        AZURE_OPENAI_API_KEY: upstream.apiKey,
        AZURE_OPENAI_ENDPOINT: `${upstream.url}/`,
        AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
      }),
    );
    const listening = () => primary.logs.filter((line) => line.msg === 'listening');
    await eventually(() => (listening().length === 2 ? true : undefined), 30_000);
    expect(primary.logs.find((line) => line.msg === 'starting workers')).toMatchObject({ role: 'primary', workers: 2 });
    expect(
      primary.logs
        .filter((line) => line.msg === 'database ready')
        .map((line) => line.instanceId)
        .sort(),
    ).toEqual(['box/worker-1', 'box/worker-2']);
    const ports = new Set(listening().map((line) => line.port));
    expect(ports.size).toBe(1);
    const url = `http://127.0.0.1:${[...ports][0]}`;
    const key = (await primary.waitForStderr(FIRST_KEY_LINE))[1]!;
    expect(primary.stderr().match(new RegExp(FIRST_KEY_LINE.source, 'gm'))).toHaveLength(1);
    const auth = { authorization: `Bearer ${key}` };

    // A reply, and resumes on new connections, which the workers take in turn.
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: Array.from({ length: 40 }, (_unused, index) => `w${index} `), delayMs: 40 });
    const turn = await openSse(`${url}/api/chat`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ chatId, messages: [{ role: 'user', content: 'Count' }] }),
    });
    await turn.readUntil((text) => text.includes('"delta":"w2 "'));
    const resumes = await Promise.all(
      Array.from({ length: 4 }, () => openSse(`${url}/api/chat/${chatId}/stream`, { headers: { ...auth, connection: 'close' } })),
    );
    const texts = await Promise.all([turn.readToEnd(), ...resumes.map((resume) => resume.readToEnd())]);
    for (const text of texts.slice(1)) expect(text).toBe(texts[0]);
    expect(parseSse(texts[0]!).at(-2)?.data).toContain('"type":"finish"');
    await eventually(() => (servedBy(primary.logs).size === 2 ? true : undefined), 5000);

    // GET /metrics on the shared port shows both workers, summed, whichever of them answers: one
    // worker generated the reply, and the resumes went to both.
    const scrapes: string[] = [];
    for (let index = 0; index < 4; index += 1) {
      const scraped = await fetch(`${url}/metrics`, { headers: { connection: 'close' } });
      expect(scraped.status).toBe(200);
      scrapes.push(await scraped.text());
    }
    const scrapers = primary.logs.filter((line) => line.msg === 'request completed' && line.url === '/metrics').map((line) => line.worker);
    expect(new Set(scrapers).size).toBe(2);
    for (const text of scrapes) {
      expect(sampleValue(text, 'llm_replies_total', { status: 'completed' })).toBe(1);
      expect(sampleValue(text, 'http_requests_total', { method: 'GET', route: '/api/chat/:chatId/stream', status: '200' })).toBe(4);
      expect(sampleValue(text, 'http_requests_total', { method: 'POST', route: '/api/chat', status: '200' })).toBe(1);
      expect(sampleValue(text, 'llm_stream_readers_active')).toBe(0);
    }

    // A worker killed is replaced under the same number.
    // By command line: the primary may also have tsx's esbuild service as a child, when it had files to compile.
    const workerPids = execFileSync('pgrep', ['-P', String(primary.child.pid), '-f', 'main\\.ts'], { encoding: 'utf8' }).trim().split('\n').map(Number);
    expect(workerPids).toHaveLength(2);
    process.kill(workerPids[0]!, 'SIGKILL');
    await primary.waitForLog((line) => line.msg === 'a worker stopped unexpectedly: starting another in its place', 10_000);
    await eventually(() => (listening().length === 3 ? true : undefined), 30_000);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);

    primary.child.kill('SIGTERM');
    expect(await primary.waitForExit(20_000)).toEqual({ code: 0, signal: null });
    expect(primary.logs.filter((line) => line.msg === 'stopped')).toHaveLength(2);
  }, 90_000);
});
