/**
 * Stream tokens: a browser's EventSource, which cannot send an Authorization header, follows a
 * reply with a short-lived token in its URL. Driven with the `eventsource` package (the browser's
 * EventSource for Node: same reconnection, same Last-Event-ID), against the real service.
 */
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { EventSource } from 'eventsource';
import { call, eventually, openSse, type SseConnection, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { postgresUnreachable } from '../support/postgres-database';
import { redisKeys, redisUnreachable, removeRedisKeys, TEST_REDIS_URL, uniqueRedisPrefix } from '../support/redis-server';
import { parseSse } from '../support/sse';
import { startTestService, type TestService } from '../support/test-service';

const ORIGIN = 'https://app.example.com';

let upstream: FakeUpstream;
let service: TestService;
let alice: string;
let bob: string;
/** Every token handed out in this file, to look for in the logs at the end. */
const issued: string[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream, auth: true, configToml: `[server]\ncors_origins = ["${ORIGIN}"]\n` });
  alice = (await service.keys!.create('alice')).key;
  bob = (await service.keys!.create('bob')).key;
});

afterAll(async () => {
  await service?.close();
  await upstream?.close();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function streamToken(key: string, chatId: string, base = service.url): Promise<{ token: string; expiresAt: string }> {
  const answer = await call(base, 'POST', `/api/chat/${chatId}/stream-token`, bearer(key));
  expect(answer.status).toBe(200);
  issued.push(answer.body.token);
  return answer.body;
}

/** Starts a turn with `key` and reads until its first frame: the reply is then in progress. */
async function startTurn(key: string, chatId: string, base = service.url): Promise<SseConnection> {
  const stream = await openSse(`${base}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(key) },
    body: JSON.stringify(userTurn(chatId, 'Tell me a story')),
  });
  expect(stream.response.status).toBe(200);
  await stream.readUntil((text) => text.includes('\n\n'));
  return stream;
}

/** What an EventSource received: each message's id and data, in order. */
interface Received {
  events: Array<{ id: string; data: string }>;
  done: Promise<void>;
  source: EventSource;
}

/** Opens an EventSource on `url` and records every message until `[DONE]`, then closes it. */
function follow(url: string): Received {
  const source = new EventSource(url);
  const events: Received['events'] = [];
  const done = new Promise<void>((resolve, reject) => {
    source.onmessage = (event) => {
      events.push({ id: event.lastEventId, data: event.data as string });
      if (event.data === '[DONE]') {
        source.close();
        resolve();
      }
    };
    source.onerror = (event) => {
      // A refusal (4xx) closes it for good; a dropped connection is retried by itself.
      if (source.readyState === source.CLOSED) reject(new Error(`EventSource failed: ${(event as { message?: string }).message}`));
    };
  });
  return { events, done, source };
}

const framesOf = (text: string) => parseSse(text).map((event) => ({ id: event.id ?? '', data: event.data }));

describe('POST /api/chat/:chatId/stream-token', () => {
  test('answers a token and its expiry, not to be cached', async () => {
    const chatId = randomUUID();
    const before = Date.now();
    const answer = await call(service.url, 'POST', `/api/chat/${chatId}/stream-token`, bearer(alice));
    expect(answer.status).toBe(200);
    issued.push(answer.body.token);
    expect(Object.keys(answer.body).sort()).toEqual(['expiresAt', 'token']);
    expect(answer.body.token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(answer.body.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const expiresAt = Date.parse(answer.body.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 300_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 300_000);
    expect(answer.headers.get('cache-control')).toBe('no-store');
  });

  test.each<[string, string, string, boolean, number, string]>([
    ['without a key', 'POST', 'c1', false, 401, 'unauthorized'],
    ['with an invalid chat id', 'POST', 'not%20an%20id', true, 400, 'invalid_request'],
    ['with GET', 'GET', 'c1', true, 405, 'method_not_allowed'],
  ])('%s', async (_name, method, chatId, withKey, status, code) => {
    const answer = await call(service.url, method, `/api/chat/${chatId}/stream-token`, withKey ? bearer(alice) : {});
    expect(answer.status).toBe(status);
    expect(answer.body.error.code).toBe(code);
  });
});

describe('GET /api/chat/:chatId/stream?token=…', () => {
  test('an EventSource follows a reply to [DONE] with exactly the frames and ids the POST reader got', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Once ', 'upon ', 'a ', 'time.'], delayMs: 100 });
    const post = await startTurn(alice, chatId);
    const { token } = await streamToken(alice, chatId);
    const received = follow(`${service.url}/api/chat/${chatId}/stream?token=${token}`);
    await received.done;
    const expected = framesOf(await post.readToEnd());
    expect(expected.at(-1)).toEqual({ id: String(expected.length), data: '[DONE]' });
    expect(received.events).toEqual(expected);
  });

  test('a dropped connection is resumed by the EventSource itself with Last-Event-ID: no frame repeated or lost', async () => {
    const chatId = randomUUID();
    const words = Array.from({ length: 20 }, (_, index) => `word${index} `);
    // About 6 s of reply: the EventSource waits 3 s before it reconnects.
    upstream.enqueue({ kind: 'stream', content: words, delayMs: 300 });
    const post = await startTurn(alice, chatId);
    const { token } = await streamToken(alice, chatId);
    const proxy = await startCuttingProxy(new URL(service.url).port);
    try {
      const received = follow(`${proxy.url}/api/chat/${chatId}/stream?token=${token}`);
      // Cut the first connection once a few text frames have arrived.
      await eventually(() => (received.events.some((event) => event.data.includes('"text-delta"')) ? true : undefined), 5000);
      const lastBeforeCut = received.events.at(-1)!.id;
      proxy.cutAll();
      await received.done;
      const expected = framesOf(await post.readToEnd());
      expect(received.events).toEqual(expected);
      expect(proxy.requestHeads).toHaveLength(2);
      expect(proxy.requestHeads[0]).not.toMatch(/^last-event-id:/im);
      const lastEventId = /^last-event-id: *(\S+)\r$/im.exec(proxy.requestHeads[1]!)?.[1];
      // The frames received before the cut end where the second connection starts.
      expect(Number(lastEventId)).toBeGreaterThanOrEqual(Number(lastBeforeCut));
      expect(received.events.findIndex((event) => event.id === lastEventId)).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  }, 20_000);

  test("a token opens its owner's chat only: another chat's or a tampered token gets 401; another owner's reaches only that owner's chat", async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
    const post = await startTurn(alice, chatId);
    const own = await streamToken(alice, chatId);
    const otherChat = await streamToken(alice, randomUUID());
    const bobs = await streamToken(bob, chatId);
    const path = (token: string) => `/api/chat/${chatId}/stream?token=${encodeURIComponent(token)}`;

    const opened = await openSse(`${service.url}${path(own.token)}`);
    expect(opened.response.status).toBe(200);
    await opened.readUntil((text) => text.includes('data: {"type":"start"'));
    opened.hangUp();

    // Bob's genuine token is Bob's: the chat id in his namespace has no reply.
    expect((await call(service.url, 'GET', path(bobs.token))).status).toBe(204);
    // Bob's token with Alice's key id written into it: the signature no longer matches.
    const [payload, signature] = bobs.token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const aliceKeyId = (await service.keys!.list()).find((record) => record.name === 'alice')!.id;
    const forged = `${Buffer.from(JSON.stringify({ ...claims, ownerId: aliceKeyId })).toString('base64url')}.${signature}`;
    const flipped = `${payload}.${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;

    for (const token of [otherChat.token, forged, flipped, 'garbage', `${own.token}x`, '']) {
      const answer = await call(service.url, 'GET', path(token));
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer');
      expect(answer.body).toEqual({
        error: { code: 'unauthorized', message: 'This stream token is not valid for this chat, or has expired; ask for a new one.' },
      });
    }
    // Two tokens at once are refused rather than one of them picked.
    expect((await call(service.url, 'GET', `${path(own.token)}&token=${own.token}`)).status).toBe(401);
    // A wrong token is refused even beside a valid key.
    expect((await call(service.url, 'GET', path(otherChat.token), bearer(alice))).status).toBe(401);

    expect((await call(service.url, 'DELETE', `/api/chat/${chatId}/stream`, bearer(alice))).body.status).toBe('cancelled');
    await post.readToEnd();
  });

  test('the token opens nothing else: not other routes, not other methods, not as a bearer', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Mine'] });
    await (await startTurn(alice, chatId)).readToEnd();
    const { token } = await streamToken(alice, chatId);
    const probes: Array<[string, string, unknown?]> = [
      ['POST', `/api/chat?token=${token}`, userTurn(chatId, 'Again')],
      ['DELETE', `/api/chat/${chatId}/stream?token=${token}`],
      ['POST', `/api/chat/${chatId}/stream-token?token=${token}`],
      ['GET', `/api/chats?token=${token}`],
      ['GET', `/api/chats/${chatId}?token=${token}`],
      ['GET', `/api/chats/${chatId}/messages?token=${token}`],
      ['DELETE', `/api/chats/${chatId}?token=${token}`],
    ];
    for (const [method, path, body] of probes) {
      const answer = await call(service.url, method, path, {}, body);
      expect({ method, path, status: answer.status, code: answer.body.error.code }).toEqual({ method, path, status: 401, code: 'unauthorized' });
    }
    const asBearer = await call(service.url, 'GET', `/api/chat/${chatId}/stream`, bearer(token));
    expect(asBearer.status).toBe(401);
    expect((await call(service.url, 'GET', `/api/chats/${chatId}`, bearer(alice))).status).toBe(200);
  });

  test('CORS applies as configured: the allowed origin, no credentials, Last-Event-ID allowed', async () => {
    const chatId = randomUUID();
    const { token } = await streamToken(alice, chatId);
    const path = `/api/chat/${chatId}/stream?token=${token}`;
    const answer = await call(service.url, 'GET', path, { origin: ORIGIN });
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
    const refused = await call(service.url, 'GET', `/api/chat/${chatId}/stream?token=x`, { origin: ORIGIN });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const preflight = await call(service.url, 'OPTIONS', path, {
      origin: ORIGIN,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'last-event-id',
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('last-event-id');
    const elsewhere = await call(service.url, 'GET', path, { origin: 'https://evil.example.com' });
    expect(elsewhere.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('the token never reaches the log: the parameter is redacted, however its name is spelled', async () => {
    const chatId = randomUUID();
    const { token } = await streamToken(alice, chatId);
    const requestId = `token-log-${randomUUID()}`;
    const answer = await call(service.url, 'GET', `/api/chat/${chatId}/stream?tok%65n=${token}&x=1`, { 'x-request-id': requestId });
    // The query parser reads `tok%65n` as `token`: accepted, so it must be redacted too.
    expect(answer.status).toBe(204);
    const line = await eventually(() => service.logs.find((text) => text.includes(requestId) && text.includes('"request completed"')));
    const keyId = (await service.keys!.list()).find((record) => record.name === 'alice')!.id;
    expect(JSON.parse(line)).toMatchObject({ keyId, url: `/api/chat/${chatId}/stream?tok%65n=[redacted]&x=1`, status: 204 });

    const refusedId = `token-log-${randomUUID()}`;
    await call(service.url, 'GET', `/api/chats?token=${token}`, { 'x-request-id': refusedId });
    const refusedLine = await eventually(() => service.logs.find((text) => text.includes(refusedId) && text.includes('"request completed"')));
    expect(JSON.parse(refusedLine)).toMatchObject({ url: '/api/chats?token=[redacted]', status: 401 });
  });
});

describe('with a 1 s lifetime and one open stream per key', () => {
  let short: TestService;

  beforeAll(async () => {
    short = await startTestService({
      upstream,
      auth: true,
      configToml: '[limits]\nmax_open_streams = 1\n',
      environment: { STREAM_TOKEN_TTL_SECONDS: '1' },
    });
  });

  afterAll(async () => {
    await short?.close();
  });

  test('a token works until it expires, then gets 401', async () => {
    const { key } = await short.keys!.create('carol');
    const chatId = randomUUID();
    const { token, expiresAt } = await streamToken(key, chatId, short.url);
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(1000);
    expect((await call(short.url, 'GET', `/api/chat/${chatId}/stream?token=${token}`)).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(expiresAt) - Date.now()) + 50));
    const answer = await call(short.url, 'GET', `/api/chat/${chatId}/stream?token=${token}`);
    expect(answer.status).toBe(401);
    expect(answer.body.error.code).toBe('unauthorized');
  });

  test("the open-stream limit counts a token's streams against its owner", async () => {
    const { key } = await short.keys!.create('dave');
    const { key: other } = await short.keys!.create('erin');
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
    const post = await startTurn(key, chatId, short.url);
    const { token } = await streamToken(key, chatId, short.url);
    const answer = await call(short.url, 'GET', `/api/chat/${chatId}/stream?token=${token}`);
    expect(answer.status).toBe(429);
    expect(answer.body.error.code).toBe('rate_limited');
    // Another key's token is counted against that key, which has no stream open.
    const { token: others } = await streamToken(other, chatId, short.url);
    expect((await call(short.url, 'GET', `/api/chat/${chatId}/stream?token=${others}`)).status).toBe(204);
    expect((await call(short.url, 'DELETE', `/api/chat/${chatId}/stream`, bearer(key))).body.status).toBe('cancelled');
    await post.readToEnd();
  });
});

const clusterSkipped = postgresUnreachable() ?? redisUnreachable();
(clusterSkipped ? describe.skip : describe)('several instances sharing Redis', () => {
  let prefix: string;
  let first: TestService | undefined;
  let second: TestService | undefined;

  afterAll(async () => {
    await second?.close();
    // The first made the database; closing it removes the database.
    await first?.close();
    await removeRedisKeys(TEST_REDIS_URL, prefix);
  });

  test("a token from one instance opens the stream on another: they share the signing secret, kept in Redis", async () => {
    prefix = uniqueRedisPrefix();
    const configToml = `[cluster]\nredis_prefix = "${prefix}"\nlease_seconds = 2\n`;
    first = await startTestService({ upstream, auth: true, engine: 'postgresql', configToml, environment: { REDIS_URL: TEST_REDIS_URL, INSTANCE_ID: 'token-a' } });
    second = await startTestService({
      upstream,
      auth: true,
      configToml,
      reuseDatabase: first.databaseUrl,
      environment: { REDIS_URL: TEST_REDIS_URL, INSTANCE_ID: 'token-b' },
    });
    const { key } = await first.keys!.create('frank');
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Across ', 'instances'], ending: 'stall', cutAfter: 1 });
    const post = await startTurn(key, chatId, first.url);
    const { token } = await streamToken(key, chatId, first.url);
    const followed = await openSse(`${second.url}/api/chat/${chatId}/stream?token=${token}`);
    expect(followed.response.status).toBe(200);
    await followed.readUntil((text) => text.includes('data: {"type":"start"'));
    followed.hangUp();
    // And the other way round.
    const { token: fromSecond } = await streamToken(key, chatId, second.url);
    expect((await openSse(`${first.url}/api/chat/${chatId}/stream?token=${fromSecond}`)).response.status).toBe(200);
    expect(await redisKeys(TEST_REDIS_URL, prefix)).toContain(`${prefix}stream-token-secret`);
    expect((await call(first.url, 'DELETE', `/api/chat/${chatId}/stream`, bearer(key))).body.status).toBe('cancelled');
    await post.readToEnd();
  }, 30_000);
});

test('no token handed out in this file was ever logged', () => {
  expect(issued.length).toBeGreaterThan(5);
  const logs = service.logs.join('\n');
  for (const token of issued) {
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(token.split('.')[1]);
  }
});

/**
 * A TCP relay in front of the service that records each request's head and can cut every
 * connection at once, as a network drop would: the client sees its stream end mid-reply.
 */
async function startCuttingProxy(port: string) {
  const sockets = new Set<net.Socket>();
  const requestHeads: string[] = [];
  const server = net.createServer((client) => {
    const target = net.connect(Number(port), '127.0.0.1');
    sockets.add(client).add(target);
    let head = '';
    client.on('data', (chunk) => {
      if (!head.includes('\r\n\r\n')) {
        head += chunk.toString('latin1');
        if (head.includes('\r\n\r\n')) requestHeads.push(head.slice(0, head.indexOf('\r\n\r\n') + 2));
      }
    });
    client.pipe(target).pipe(client);
    const drop = () => {
      client.destroy();
      target.destroy();
    };
    client.on('error', drop).on('close', drop);
    target.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requestHeads,
    cutAll() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
