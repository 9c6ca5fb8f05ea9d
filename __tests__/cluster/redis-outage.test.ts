/**
 * Redis stopped and started under two running instances: a Redis server of this test's own, on a
 * port of its own (never the shared one), killed as an outage would kill it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { eventually, openSse, type SseConnection } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { createPostgresDatabase, dropPostgresDatabases, postgresUnreachable } from '../support/postgres-database';
import { ownRedis, REDIS_SERVER_BINARY, redisKeys, type OwnRedis } from '../support/redis-server';
import { startClusterInstance, type ClusterInstance } from '../support/cluster-instance';
import { FIRST_KEY_LINE, stopServers } from '../support/server-process';
import { parseSse } from '../support/sse';

const skipped = postgresUnreachable() ?? (REDIS_SERVER_BINARY ? undefined : 'no redis-server binary on this machine');
if (skipped) process.stderr.write(`\nRedis outage tests skipped: ${skipped}\n`);
const describeOutage = skipped ? describe.skip : describe;

let directory: string;
let databaseUrl: string;
let upstream: FakeUpstream;
let redis: OwnRedis;
let key: string;
const instances: ClusterInstance[] = [];

function start(name: string, configPath: string): Promise<ClusterInstance> {
  return startClusterInstance({ directory, databaseUrl, redisUrl: redis.url, configPath, upstream }, name);
}

const auth = () => ({ authorization: `Bearer ${key}` });

function openTurn(url: string, chatId: string): Promise<SseConnection> {
  return openSse(`${url}/api/chat`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({ chatId, messages: [{ role: 'user', content: 'Count' }] }),
  });
}

function words(count: number): string[] {
  return Array.from({ length: count }, (_unused, index) => `w${index + 1} `);
}

async function status(chatId: string): Promise<string | undefined> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT "status" FROM "Message" WHERE "chatId" = $1 AND "role" = 'assistant'`, [chatId]);
    return (rows[0] as { status: string } | undefined)?.status;
  } finally {
    await client.end();
  }
}

describeOutage('Redis unreachable under running instances', () => {
  beforeAll(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'redis-outage-'));
    databaseUrl = await createPostgresDatabase();
    upstream = await startFakeUpstream();
    redis = await ownRedis(REDIS_SERVER_BINARY!);
    await redis.start();
    const configPath = path.join(directory, 'config.toml');
    writeFileSync(configPath, '[cluster]\nlease_seconds = 5\n[streaming]\ncheckpoint_interval_seconds = 0.2\n[openai]\nmax_retries = 0\n');
    instances.push(await start('instance-e', configPath));
    key = (await instances[0]!.process.waitForStderr(FIRST_KEY_LINE))[1]!;
    instances.push(await start('instance-f', configPath));
  }, 60_000);

  afterAll(async () => {
    await stopServers();
    await redis?.kill();
    await upstream?.close();
    if (databaseUrl) await dropPostgresDatabases([databaseUrl]);
    rmSync(directory, { recursive: true, force: true });
  });

  test('/readyz says 503 and new turns get 503 service_unavailable; the running reply finishes and is stored, its remote reader catches up, and all recovers when Redis is back', async () => {
    const [e, f] = instances as [ClusterInstance, ClusterInstance];
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(60), delayMs: 50 });
    const onE = await openTurn(e.url, chatId);
    await onE.readUntil((text) => text.includes('"delta":"w2 "'));
    const onF = await openSse(`${f.url}/api/chat/${chatId}/stream`, { headers: auth() });
    await onF.readUntil((text) => text.includes('"delta":"w3 "'));

    await redis.kill();
    for (const instance of [e, f]) {
      const ready = await eventually(async () => {
        const response = await fetch(`${instance.url}/readyz`);
        return response.status === 503 ? response.json() : undefined;
      }, 5000);
      expect(ready).toEqual({ error: { code: 'service_unavailable', message: 'Redis is not reachable: no new turn can be accepted.' } });
    }
    const refused = await fetch(`${f.url}/api/chat`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect([refused.status, refused.headers.get('retry-after'), await refused.json()]).toEqual([
      503,
      '2',
      { error: { code: 'service_unavailable', message: 'The service cannot reach its coordination store (Redis); retry shortly.' } },
    ]);
    const requestsBeforeRestart = upstream.requests.length;

    await redis.start();
    const [textE, textF] = await Promise.all([onE.readToEnd(), onF.readToEnd()]);
    expect(parseSse(textE).at(-2)?.data).toContain('"type":"finish"');
    // Back within the lease: the follower asked for what it missed, and has every frame.
    expect(textF).toBe(textE);
    expect(await eventually(async () => ((await status(chatId)) === 'completed' ? 'completed' : undefined), 5000)).toBe('completed');
    // Nothing was sent upstream for the refused turn.
    expect(upstream.requests.length).toBe(requestsBeforeRestart);

    for (const instance of [e, f]) {
      await eventually(async () => ((await fetch(`${instance.url}/readyz`)).status === 200 ? true : undefined), 10_000);
    }
    upstream.enqueue({ kind: 'stream', content: words(5), delayMs: 10 });
    const again = await openTurn(f.url, randomUUID());
    expect(parseSse(await again.readToEnd()).at(-1)?.data).toBe('[DONE]');
    for (const instance of [e, f]) expect(instance.process.child.exitCode).toBeNull();
  }, 60_000);

  test('a claim lost with Redis\'s data is put back by its holder: a second turn on the chat is still refused', async () => {
    const [e, f] = instances as [ClusterInstance, ClusterInstance];
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(80), delayMs: 50 });
    const onE = await openTurn(e.url, chatId);
    await onE.readUntil((text) => text.includes('"delta":"w2 "'));
    await redis.kill();
    await redis.start();
    await eventually(async () => ((await fetch(`${f.url}/readyz`)).status === 200 ? true : undefined), 10_000);
    // Redis came back empty; the instance generating the reply puts its claim back within a third of the lease.
    expect(await eventually(async () => ((await redisKeys(redis.url, 'lss:chat:')).length === 1 ? true : undefined), 5000)).toBe(true);
    const second = await eventually(async () => {
      const response = await fetch(`${f.url}/api/chat`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify({ chatId, messages: [{ role: 'user', content: 'Again' }] }),
      });
      return response.status === 503 ? undefined : response;
    }, 5000);
    expect([second.status, ((await second.json()) as { error: { code: string } }).error.code]).toEqual([409, 'generation_in_progress']);
    // And a reader on F can follow it again.
    const onF = await openSse(`${f.url}/api/chat/${chatId}/stream`, { headers: auth() });
    const [textE, textF] = await Promise.all([onE.readToEnd(), onF.readToEnd()]);
    expect(textF).toBe(textE);
  }, 60_000);

  test('an instance started while Redis is down comes up not ready, refuses turns, and becomes ready when Redis is there', async () => {
    await redis.kill();
    const configPath = path.join(directory, 'config.toml');
    const g = await start('instance-g', configPath);
    const ready = await fetch(`${g.url}/readyz`);
    expect(ready.status).toBe(503);
    const refused = await fetch(`${g.url}/api/chat`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([503, 'service_unavailable']);
    await redis.start();
    await eventually(async () => ((await fetch(`${g.url}/readyz`)).status === 200 ? true : undefined), 10_000);
    upstream.enqueue({ kind: 'stream', content: ['up'] });
    const turn = await openTurn(g.url, randomUUID());
    expect(parseSse(await turn.readToEnd()).at(-1)?.data).toBe('[DONE]');
    expect(g.process.logs.filter((line) => line.msg === 'Redis is not reachable: new turns are refused until it is back').length).toBeGreaterThan(0);
  }, 60_000);
});
