/**
 * Several instances of the service, as real processes, sharing one PostgreSQL database and one
 * Redis (under a key prefix of this run's own), driven over HTTP as clients behind a load balancer
 * would drive them: any request may land on any instance.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DefaultChatTransport, readUIMessageStream, type UIMessage } from 'ai';
import { Client } from 'pg';
import { ApiKeys } from '../../src/auth/api-keys';
import { PROJECT_ROOT } from '../../src/build-service';
import { openStore } from '../../src/store/open-store';
import { eventually, openSse, type SseConnection } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { createPostgresDatabase, dropPostgresDatabases, postgresUnreachable } from '../support/postgres-database';
import { connectRedis, redisKeys, redisUnreachable, removeRedisKeys, TEST_REDIS_URL, uniqueRedisPrefix } from '../support/redis-server';
import { startClusterInstance, type ClusterInstance } from '../support/cluster-instance';
import { FIRST_KEY_LINE, serviceEnvironment, startServer, stopServers } from '../support/server-process';
import { parseSse } from '../support/sse';

const LEASE_SECONDS = 2;
const skipped = postgresUnreachable() ?? redisUnreachable();
const describeCluster = skipped ? describe.skip : describe;

type Instance = ClusterInstance;

let directory: string;
let databaseUrl: string;
let prefix: string;
let upstream: FakeUpstream;
let configPath: string;
/** The first key, made by the first instance. */
let firstKey: string;
let a: Instance;
let b: Instance;
let c: Instance;

/** Starts an instance of the service on the shared database and Redis, and waits until it listens. */
function startInstance(name: string, extra: Record<string, string> = {}): Promise<Instance> {
  return startClusterInstance({ directory, databaseUrl, redisUrl: TEST_REDIS_URL, configPath, upstream }, name, extra);
}

/** A new API key, so that each test's limits start from zero. */
async function newKey(): Promise<string> {
  return (await newKeyRecord()).key;
}

async function newKeyRecord(): Promise<{ key: string; id: string }> {
  const { store, keys } = await openStore({
    databaseUrl,
    prismaDir: path.join(PROJECT_ROOT, 'prisma'),
    lockWaitMs: 1000,
    owner: false,
    poolSize: 1,
    statementTimeoutMs: 0,
  });
  try {
    const created = await new ApiKeys(keys).create(`test-${randomUUID().slice(0, 8)}`);
    return { key: created.key, id: created.record.id };
  } finally {
    await store.close();
  }
}

function headers(key: string, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${key}`, ...extra };
}

function turnBody(chatId: string, content = 'Count'): string {
  return JSON.stringify({ chatId, messages: [{ role: 'user', content }] });
}

function openTurn(instance: Instance, key: string, chatId: string): Promise<SseConnection> {
  return openSse(`${instance.url}/api/chat`, { method: 'POST', headers: headers(key, { 'content-type': 'application/json' }), body: turnBody(chatId) });
}

function postTurn(instance: Instance, key: string, chatId: string): Promise<Response> {
  return fetch(`${instance.url}/api/chat`, { method: 'POST', headers: headers(key, { 'content-type': 'application/json' }), body: turnBody(chatId) });
}

function resume(instance: Instance, key: string, chatId: string, lastEventId?: number): Promise<SseConnection> {
  const extra: Record<string, string> = lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) };
  return openSse(`${instance.url}/api/chat/${chatId}/stream`, { headers: headers(key, extra) });
}

function words(count: number): string[] {
  return Array.from({ length: count }, (_unused, index) => `w${index + 1} `);
}

/** The frames of an SSE body with an id above `lastId`, as text. */
function framesAfter(text: string, lastId: number): string {
  return text
    .split('\n\n')
    .filter((frame) => frame && Number(/^id: (\d+)/.exec(frame)?.[1]) > lastId)
    .map((frame) => `${frame}\n\n`)
    .join('');
}

async function rows<Row>(sql: string, parameters: unknown[] = []): Promise<Row[]> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(sql, parameters)).rows as Row[];
  } finally {
    await client.end();
  }
}

async function replyRow(chatId: string): Promise<{ id: string; status: string; content: string; instanceId: string | null } | undefined> {
  const found = await rows<{ id: string; status: string; content: string; instanceId: string | null }>(
    `SELECT "id", "status", "content", "instanceId" FROM "Message" WHERE "chatId" = $1 AND "role" = 'assistant' ORDER BY "createdAt" DESC LIMIT 1`,
    [chatId],
  );
  return found[0];
}

if (skipped) process.stderr.write(`\nMulti-instance tests skipped: ${skipped}\n`);

describeCluster('several instances behind a load balancer', () => {
  beforeAll(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'several-instances-'));
    databaseUrl = await createPostgresDatabase();
    prefix = uniqueRedisPrefix();
    upstream = await startFakeUpstream();
    configPath = path.join(directory, 'config.toml');
    writeFileSync(
      configPath,
      [
        '[cluster]',
        `lease_seconds = ${LEASE_SECONDS}`,
        `redis_prefix = "${prefix}"`,
        '[limits]',
        'requests_per_minute = 20',
        'concurrent_streams = 2',
        'max_open_streams = 4',
        '[streaming]',
        'checkpoint_interval_seconds = 0.2',
        'shutdown_grace_seconds = 10',
        '[openai]',
        'max_retries = 0',
        '',
      ].join('\n'),
    );
    a = await startInstance('instance-a');
    firstKey = (await a.process.waitForStderr(FIRST_KEY_LINE))[1]!;
    [b, c] = await Promise.all([startInstance('instance-b'), startInstance('instance-c')]);
  }, 90_000);

  afterAll(async () => {
    await stopServers();
    await upstream?.close();
    if (databaseUrl) await dropPostgresDatabases([databaseUrl]);
    if (prefix) await removeRedisKeys(TEST_REDIS_URL, prefix);
    rmSync(directory, { recursive: true, force: true });
  });

  test('the instances are ready, and only the first start made a key', async () => {
    for (const instance of [a, b, c]) {
      const ready = await fetch(`${instance.url}/readyz`);
      expect([instance.name, ready.status, await ready.json()]).toEqual([instance.name, 200, { status: 'ready' }]);
    }
    expect(b.process.stderr()).not.toMatch(FIRST_KEY_LINE);
    expect(c.process.stderr()).not.toMatch(FIRST_KEY_LINE);
    expect(firstKey).toMatch(/^lss_/);
  });

  test('a reply started on A resumes live on B and C, with and without Last-Event-ID, frame for frame, and through the AI SDK transport', async () => {
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(40), delayMs: 40 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('"delta":"w3 "'));

    const [fromStart, fromId5] = await Promise.all([resume(b, key, chatId), resume(c, key, chatId, 5)]);
    const transport = new DefaultChatTransport<UIMessage>({ api: `${b.url}/api/chat`, headers: headers(key) });
    const reconnected = await transport.reconnectToStream({ chatId });
    expect(reconnected).not.toBeNull();
    let message: UIMessage | undefined;
    for await (const update of readUIMessageStream({ stream: reconnected!, terminateOnError: true })) message = update;

    const [textA, textB, textC] = await Promise.all([onA.readToEnd(), fromStart.readToEnd(), fromId5.readToEnd()]);
    expect(fromStart.response.status).toBe(200);
    expect(fromStart.response.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    // Exactly what the reader on A got: every frame, same ids, no gap, no repeat.
    expect(textB).toBe(textA);
    expect(textC).toBe(framesAfter(textA, 5));
    expect(textC.startsWith('id: 6\n')).toBe(true);
    const events = parseSse(textA);
    expect(events.at(-1)).toEqual({ id: String(events.length), data: '[DONE]' });
    expect(events.filter((event) => event.data.includes('text-delta'))).toHaveLength(40);

    const stored = await eventually(async () => {
      const row = await replyRow(chatId);
      return row?.status === 'completed' ? row : undefined;
    }, 10_000);
    expect(stored).toEqual({ id: expect.any(String), status: 'completed', content: words(40).join(''), instanceId: 'instance-a' });
    expect(message).toMatchObject({ id: stored.id, role: 'assistant', parts: [{ type: 'text', text: words(40).join(''), state: 'done' }] });

    // Once it has ended, no instance has anything to resume.
    for (const instance of [a, b, c]) expect((await fetch(`${instance.url}/api/chat/${chatId}/stream`, { headers: headers(key) })).status).toBe(204);
  });

  test('DELETE /api/chat/:chatId/stream on B cancels the reply on A: its upstream request is aborted within 1 s and every reader gets abort and [DONE]', async () => {
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(200), delayMs: 50 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('"delta":"w2 "'));
    const upstreamIndex = upstream.requests.length - 1;
    const onC = await resume(c, key, chatId);
    await onC.readUntil((text) => text.includes('"delta":"w3 "'));

    const cancelledAt = Date.now();
    const cancel = await fetch(`${b.url}/api/chat/${chatId}/stream`, { method: 'DELETE', headers: headers(key) });
    const row = await replyRow(chatId);
    expect([cancel.status, await cancel.json()]).toEqual([200, { status: 'cancelled', messageId: row!.id }]);
    expect((await upstream.clientGone(upstreamIndex)) - cancelledAt).toBeLessThan(1000);

    const [textA, textC] = await Promise.all([onA.readToEnd(), onC.readToEnd()]);
    expect(textC).toBe(textA);
    const tail = parseSse(textA).slice(-3).map((event) => event.data);
    expect(tail).toEqual(['{"type":"text-end","id":"text-0"}', '{"type":"abort","reason":"cancelled"}', '[DONE]']);
    // Stored before the DELETE answered.
    expect(row).toMatchObject({ status: 'cancelled', instanceId: 'instance-a' });
    expect(row!.content.length).toBeGreaterThan(0);
  });

  test('a second POST on a chat generating elsewhere gets 409 generation_in_progress, and of turns started at once on three instances exactly one runs', async () => {
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(30), delayMs: 30 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('text-delta'));
    const second = await postTurn(b, key, chatId);
    expect([second.status, await second.json()]).toEqual([
      409,
      { error: { code: 'generation_in_progress', message: 'This chat is already generating a reply.' } },
    ]);
    await onA.readToEnd();

    const raced = randomUUID();
    upstream.setDefault({ kind: 'stream', content: words(10), delayMs: 20 });
    const responses = await Promise.all([a, b, c].map((instance) => postTurn(instance, key, raced)));
    const bodies = await Promise.all(responses.map((response) => response.text()));
    expect(responses.map((response) => response.status).sort()).toEqual([200, 409, 409]);
    expect(bodies.filter((body) => body.includes('generation_in_progress'))).toHaveLength(2);
    await eventually(async () => ((await replyRow(raced))?.status === 'completed' ? true : undefined), 10_000);
    expect(await rows(`SELECT "role", "status" FROM "Message" WHERE "chatId" = $1 ORDER BY "role" DESC`, [raced])).toEqual([
      { role: 'user', status: 'completed' },
      { role: 'assistant', status: 'completed' },
    ]);
    upstream.setDefault({ kind: 'stream', content: ['Hello', ' world'] });
  });

  test('a chat\'s claim is a lock with expiry in Redis: while another holds it a turn gets 409, and once it lapses the turn runs', async () => {
    const { key, id } = await newKeyRecord();
    const chatId = randomUUID();
    const redis = await connectRedis(TEST_REDIS_URL);
    try {
      // A claim as an instance that then vanished would leave it, for 1.5 s.
      await redis.set(`${prefix}chat:${id}:${chatId}`, `999999|${randomUUID()}|instance-gone`, 'PX', 1500);
      const refused = await postTurn(b, key, chatId);
      expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([409, 'generation_in_progress']);
      expect(await rows(`SELECT count(*)::int AS "count" FROM "Message" WHERE "chatId" = $1`, [chatId])).toEqual([{ count: 0 }]);
      await new Promise((resolve) => setTimeout(resolve, 1600));
      upstream.enqueue({ kind: 'stream', content: ['now'] });
      const accepted = await postTurn(b, key, chatId);
      expect([accepted.status, parseSse(await accepted.text()).at(-1)?.data]).toEqual([200, '[DONE]']);
    } finally {
      await redis.quit();
    }
  });

  test('DELETE /api/chats/:chatId on B stops the reply generating on A and deletes the chat for every instance', async () => {
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(200), delayMs: 50 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('"delta":"w2 "'));
    const deleted = await fetch(`${b.url}/api/chats/${chatId}`, { method: 'DELETE', headers: headers(key) });
    expect(deleted.status).toBe(204);
    expect(parseSse(await onA.readToEnd()).slice(-2).map((event) => event.data)).toEqual(['{"type":"abort","reason":"cancelled"}', '[DONE]']);
    for (const instance of [a, b, c]) expect((await fetch(`${instance.url}/api/chats/${chatId}`, { headers: headers(key) })).status).toBe(404);
  });

  test('requests_per_minute, concurrent_streams and max_open_streams count every instance\'s requests', async () => {
    // Turns: 2 at once for a key, wherever they run.
    const key = await newKey();
    upstream.enqueue({ kind: 'stream', content: words(100), delayMs: 50 }, { kind: 'stream', content: words(100), delayMs: 50 });
    const [firstChat, secondChat] = [randomUUID(), randomUUID()];
    const first = await openTurn(a, key, firstChat);
    const second = await openTurn(b, key, secondChat);
    await Promise.all([first, second].map((stream) => stream.readUntil((text) => text.includes('text-delta'))));
    const third = await postTurn(c, key, randomUUID());
    expect([third.status, third.headers.get('retry-after'), await third.json()]).toEqual([
      429,
      '1',
      { error: { code: 'rate_limited', message: 'At most 2 replies may stream at once for this API key.' } },
    ]);
    // Open streams: the two POST streams and two resumes make 4, the limit; a fifth is refused on any instance.
    const resumed = [await resume(c, key, firstChat), await resume(a, key, secondChat)];
    await Promise.all(resumed.map((stream) => stream.readUntil((text) => text.includes('text-delta'))));
    const refused = await fetch(`${b.url}/api/chat/${secondChat}/stream`, { headers: headers(key) });
    expect([refused.status, ((await refused.json()) as { error: { message: string } }).error.message]).toEqual([
      429,
      'Too many event streams are open for this API key (at most 4); close one first.',
    ]);
    for (const stream of [first, second, ...resumed]) stream.hangUp();

    // Requests per minute: 20 for the key across the instances; the 21st is refused wherever it lands.
    const counted = await newKey();
    const statuses: number[] = [];
    for (let index = 0; index < 21; index += 1) {
      const instance = [a, b, c][index % 3]!;
      statuses.push((await fetch(`${instance.url}/api/chats`, { headers: headers(counted) })).status);
    }
    expect(statuses).toEqual([...Array(20).fill(200), 429]);
  });

  test('a /v1 completion counts as one of the key\'s replies on every instance, and frees its slot when it ends', async () => {
    const key = await newKey();
    upstream.enqueue({ kind: 'stream', content: words(100), delayMs: 50 }, { kind: 'stream', content: words(100), delayMs: 50 });
    const completion = await openSse(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...headers(key), 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], stream: true }),
    });
    const turn = await openTurn(b, key, randomUUID());
    await Promise.all([completion, turn].map((stream) => stream.readUntil((text) => text.includes('w1'))));
    const refused = await fetch(`${c.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...headers(key), 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect([refused.status, ((await refused.json()) as { error: { message: string } }).error.message]).toEqual([
      429,
      'At most 2 replies may stream at once for this API key.',
    ]);
    completion.hangUp();
    turn.hangUp();
    // The completion's slot is given back when it ends: the key's next one runs.
    upstream.enqueue({ kind: 'stream', content: ['Next'] });
    const next = await eventually(async () => {
      const answer = await fetch(`${c.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...headers(key), 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'Again' }] }),
      });
      return answer.status === 200 ? ((await answer.json()) as { choices: Array<{ message: { content: string } }> }) : undefined;
    }, 10_000);
    expect(next.choices[0]!.message.content).toBe('Next');
  });

  test('a reply\'s owner killed (SIGKILL): readers elsewhere get an error and [DONE], another instance marks it interrupted with its last checkpoint, and its slots free themselves', async () => {
    const doomed = await startInstance('instance-doomed');
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(10), delayMs: 20, ending: 'stall' }, { kind: 'stream', content: words(10), delayMs: 20, ending: 'stall' });
    const onDoomed = await openTurn(doomed, key, chatId);
    await onDoomed.readUntil((text) => text.includes('"delta":"w10 "'));
    const other = await openTurn(doomed, key, randomUUID());
    await other.readUntil((text) => text.includes('"delta":"w10 "'));
    const onB = await resume(b, key, chatId);
    await onB.readUntil((text) => text.includes('"delta":"w10 "'));
    // The last checkpoint holds all ten words before the kill.
    await eventually(async () => ((await replyRow(chatId))?.content === words(10).join('') ? true : undefined), 5000);

    doomed.process.child.kill('SIGKILL');
    const killedAt = Date.now();
    // Both of the key's turn slots are held by the dead instance until its lease lapses.
    const refused = await postTurn(a, key, randomUUID());
    expect(refused.status).toBe(429);

    const textB = await onB.readToEnd();
    expect(parseSse(textB).slice(-3).map((event) => event.data)).toEqual([
      '{"type":"text-end","id":"text-0"}',
      '{"type":"error","errorText":"The instance generating this reply stopped; the reply was interrupted. Its stored part is in the chat history."}',
      '[DONE]',
    ]);
    const interrupted = await eventually(async () => {
      const row = await replyRow(chatId);
      return row?.status === 'interrupted' ? row : undefined;
    }, (LEASE_SECONDS + 5) * 1000);
    expect(Date.now() - killedAt).toBeLessThan((LEASE_SECONDS + 5) * 1000);
    expect(interrupted).toMatchObject({ content: words(10).join(''), instanceId: 'instance-doomed' });

    // Within the lease, the slots are free again.
    upstream.enqueue({ kind: 'stream', content: ['again'] });
    const accepted = await eventually(async () => {
      const response = await postTurn(c, key, randomUUID());
      const text = await response.text();
      return response.status === 200 ? text : undefined;
    }, LEASE_SECONDS * 1000 + 1000);
    expect(parseSse(accepted).at(-1)?.data).toBe('[DONE]');
    // And the chat itself takes a new turn.
    upstream.enqueue({ kind: 'stream', content: ['fresh'] });
    expect((await postTurn(b, key, chatId)).status).toBe(200);
  }, 30_000);

  test('an instance restarted under its name after a crash takes its chats back at once, its cut-off reply marked interrupted', async () => {
    let phoenix = await startInstance('instance-phoenix');
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(5), delayMs: 20, ending: 'stall' });
    const cut = await openTurn(phoenix, key, chatId);
    await cut.readUntil((text) => text.includes('"delta":"w5 "'));
    phoenix.process.child.kill('SIGKILL');
    await phoenix.process.waitForExit();
    // Elsewhere the chat stays claimed until the dead run's lease lapses...
    expect((await postTurn(b, key, chatId)).status).toBe(409);
    phoenix = await startInstance('instance-phoenix');
    expect(await replyRow(chatId)).toMatchObject({ status: 'interrupted', instanceId: 'instance-phoenix' });
    // ...but the restarted instance knows the claim is its last run's, and takes it back.
    upstream.enqueue({ kind: 'stream', content: ['again'] });
    const again = await postTurn(phoenix, key, chatId);
    expect([again.status, parseSse(await again.text()).at(-1)?.data]).toEqual([200, '[DONE]']);
    expect(await replyRow(chatId)).toMatchObject({ status: 'completed', content: 'again', instanceId: 'instance-phoenix' });
  }, 30_000);

  test('open-stream slots held by a killed instance free themselves within the lease', async () => {
    const hoarder = await startInstance('instance-hoarder');
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(300), delayMs: 50 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('text-delta'));
    // The POST stream on A and three resumes on the hoarder: the key's 4 open streams.
    const held = await Promise.all([1, 2, 3].map(() => resume(hoarder, key, chatId)));
    await Promise.all(held.map((stream) => stream.readUntil((text) => text.includes('text-delta'))));
    const resumeOnB = () => fetch(`${b.url}/api/chat/${chatId}/stream`, { headers: headers(key) });
    const refused = await resumeOnB();
    expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([429, 'rate_limited']);

    hoarder.process.child.kill('SIGKILL');
    const killedAt = Date.now();
    let accepted: Response | undefined;
    // Polled gently: every request counts against the key's requests per minute.
    while (!accepted && Date.now() - killedAt < LEASE_SECONDS * 1000 + 2000) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      const response = await resumeOnB();
      if (response.status === 200) accepted = response;
      else await response.body?.cancel();
    }
    expect(accepted?.status).toBe(200);
    expect(Date.now() - killedAt).toBeLessThan(LEASE_SECONDS * 1000 + 1500);
    await accepted!.body?.cancel();
    await fetch(`${a.url}/api/chat/${chatId}/stream`, { method: 'DELETE', headers: headers(key) });
    expect(parseSse(await onA.readToEnd()).at(-1)?.data).toBe('[DONE]');
  }, 30_000);

  test('restarting an instance that owns nothing leaves the replies of live instances alone', async () => {
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(60), delayMs: 50 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('"delta":"w2 "'));

    c.process.child.kill('SIGTERM');
    expect(await c.process.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    c = await startInstance('instance-c');
    expect(c.process.logs.some((line) => line.msg.includes('marked interrupted'))).toBe(false);
    // The reply goes on, and the restarted instance serves it.
    const onC = await resume(c, key, chatId);
    const [textA, textC] = await Promise.all([onA.readToEnd(), onC.readToEnd()]);
    expect(textC).toBe(textA);
    expect(parseSse(textA).at(-2)?.data).toContain('"type":"finish"');
    expect(await replyRow(chatId)).toMatchObject({ status: 'completed', content: words(60).join(''), instanceId: 'instance-a' });
  }, 30_000);

  test('a second process started under a running instance\'s name is refused, and leaves that instance\'s replies alone', async () => {
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(40), delayMs: 50 });
    const onA = await openTurn(a, key, chatId);
    await onA.readUntil((text) => text.includes('"delta":"w2 "'));
    const twin = startServer(
      directory,
      serviceEnvironment({
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: databaseUrl,
        REDIS_URL: TEST_REDIS_URL,
        INSTANCE_ID: 'instance-a',
        CONFIG_PATH: configPath,
      }),
    );
    expect(await twin.waitForExit(20_000)).toEqual({ code: 1, signal: null });
    expect(twin.stderr()).toBe(
      'Cannot start: A running instance already has the name "instance-a" ([cluster] instance_id, INSTANCE_ID, or the host name and port): give each instance its own.\n',
    );
    expect((await replyRow(chatId))?.status).toBe('streaming');
    expect(parseSse(await onA.readToEnd()).at(-2)?.data).toContain('"type":"finish"');
    expect(await replyRow(chatId)).toMatchObject({ status: 'completed', content: words(40).join('') });
  }, 30_000);

  test('a rolling deploy: SIGTERM on the owner lets its reply finish, and a reader on another instance sees it end normally', async () => {
    const leaving = await startInstance('instance-leaving');
    const key = await newKey();
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: words(30), delayMs: 50 });
    const onLeaving = await openTurn(leaving, key, chatId);
    await onLeaving.readUntil((text) => text.includes('"delta":"w2 "'));
    const onB = await resume(b, key, chatId);
    await onB.readUntil((text) => text.includes('"delta":"w3 "'));

    leaving.process.child.kill('SIGTERM');
    const [textLeaving, textB] = await Promise.all([onLeaving.readToEnd(), onB.readToEnd()]);
    expect(textB).toBe(textLeaving);
    expect(parseSse(textB).at(-2)?.data).toContain('"type":"finish"');
    expect(await leaving.process.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    expect(await replyRow(chatId)).toMatchObject({ status: 'completed', content: words(30).join('') });
  }, 30_000);

  test('every Redis key lives under the prefix, and a chat\'s claim is gone once its reply is stored', async () => {
    const keys = await redisKeys(TEST_REDIS_URL, prefix);
    expect(keys.every((name) => name.startsWith(prefix))).toBe(true);
    expect(keys.filter((name) => name.startsWith(`${prefix}chat:`))).toEqual([]);
    expect(keys).toContain(`${prefix}fence`);
  });
});
