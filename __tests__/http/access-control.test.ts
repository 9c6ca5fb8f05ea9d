import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openSse, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { TSX_LOADER } from '../support/server-process';
import { describeEachEngine } from '../support/test-engines';
import { startTestService, type TestService, type TestServiceOptions } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;
let alice: string;
let bob: string;

async function start(options: TestServiceOptions = {}) {
  service = await startTestService({ upstream, auth: true, ...options });
  alice = (await service.keys!.create('alice')).key;
  bob = (await service.keys!.create('bob')).key;
}

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  await service.close();
  await upstream.close();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function call(method: string, path: string, key: string | undefined, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: { ...(key ? bearer(key) : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined };
}

/** Chats and the messages of chats that exist (a deleted chat's messages are removed in the background). */
function rowCounts() {
  return service.query(
    'SELECT (SELECT COUNT(*) FROM "Chat") AS chats, (SELECT COUNT(*) FROM "Message" m WHERE EXISTS (SELECT 1 FROM "Chat" c WHERE c."ownerId" = m."ownerId" AND c."id" = m."chatId")) AS messages',
  );
}

describeEachEngine(() => {
  describe('API keys', () => {
    test.each<[string, Record<string, string>, string]>([
      ['no Authorization header', {}, 'Send an API key as Authorization: Bearer <key>.'],
      ['another scheme', { authorization: 'Basic dXNlcjpwYXNz' }, 'Send an API key as Authorization: Bearer <key>.'],
      ['an unknown key', { authorization: `Bearer lss_${'A'.repeat(43)}` }, 'This API key is not valid.'],
      ['a key of the wrong shape', { authorization: 'Bearer hunter2' }, 'This API key is not valid.'],
    ])('%s gets 401 with WWW-Authenticate: Bearer', async (_name, headers, message) => {
      await start();
      const before = await rowCounts();
      const answer = await call('POST', '/api/chat', undefined, userTurn(randomUUID(), 'Hi'), headers);
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer');
      expect(answer.body).toEqual({ error: { code: 'unauthorized', message } });
      expect(await rowCounts()).toEqual(before);
      expect(upstream.requests).toHaveLength(0);
    });

    test('a revoked key gets 401; the others keep working', async () => {
      await start();
      const { key, record } = await service.keys!.create('carol');
      expect((await call('GET', '/api/chats', key)).status).toBe(200);
      expect((await service.keys!.revoke(record.id))!.revokedAt).toBeInstanceOf(Date);
      const answer = await call('GET', '/api/chats', key);
      expect(answer.status).toBe(401);
      expect(answer.body.error.message).toBe('This API key has been revoked.');
      expect((await call('GET', '/api/chats', alice)).status).toBe(200);
    });

    test('keys are random, prefixed, and stored only as hashes', async () => {
      await start();
      expect(alice).toMatch(/^lss_[A-Za-z0-9_-]{43}$/);
      expect(alice).not.toBe(bob);
      const rows = await service.query<Record<string, unknown>>('SELECT * FROM "ApiKey"');
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        const stored = JSON.stringify(row);
        expect(stored).not.toContain(alice.slice(12));
        expect(stored).not.toContain(bob.slice(12));
        expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
      }
    });

    test('/healthz and /readyz need no key', async () => {
      await start();
      expect((await call('GET', '/healthz', undefined)).status).toBe(200);
      expect((await call('GET', '/readyz', undefined)).status).toBe(200);
    });
  });

  describe('ownership', () => {
    test("another key's chat ids answer exactly as unused ids do, on every route, and nothing of the owner's changes", async () => {
      await start();
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['Mine'] });
      expect((await postChat(service.url, userTurn(chatId, 'Alice asks'), bearer(alice))).status).toBe(200);
      // A reply in progress, for the stream routes.
      upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
      const stream = await openTurn(chatId, alice);
      const before = await service.query('SELECT "id", "content", "status" FROM "Message" ORDER BY "seq"');

      const probes = (id: string) => [
        ['GET', `/api/chats/${id}/messages`],
        ['GET', `/api/chats/${id}`],
        ['PATCH', `/api/chats/${id}`, { title: 'Mine now' }],
        ['GET', `/api/chat/${id}/stream`],
        ['DELETE', `/api/chat/${id}/stream`],
        ['DELETE', `/api/chats/${id}`],
      ] as const;
      const answers = async (id: string) => {
        const results = [];
        for (const [method, path, body] of probes(id)) {
          const answer = await call(method, path, bob, body);
          results.push({ status: answer.status, body: answer.body, text: answer.text });
        }
        return results;
      };
      const unused = await answers(randomUUID());
      expect(unused.map((answer) => answer.status)).toEqual([404, 404, 404, 204, 204, 404]);
      expect(await answers(chatId)).toEqual(unused);
      expect(await service.query('SELECT "id", "content", "status" FROM "Message" ORDER BY "seq"')).toEqual(before);
      expect(await service.query('SELECT "title" FROM "Chat"')).toEqual([{ title: 'Alice asks' }]);
      expect((await call('GET', '/api/chats', bob)).body).toEqual({ chats: [], nextCursor: null });

      // Alice still has it all, and her reply was not stopped.
      expect((await call('GET', '/api/chats', alice)).body.chats.map((chat: { chatId: string }) => chat.chatId)).toEqual([chatId]);
      const resumed = await openSse(`${service.url}/api/chat/${chatId}/stream`, { headers: bearer(alice) });
      expect(resumed.response.status).toBe(200);
      resumed.hangUp();
      const cancelled = await call('DELETE', `/api/chat/${chatId}/stream`, alice);
      expect(cancelled.body.status).toBe('cancelled');
      await stream.readToEnd();
      expect((await call('DELETE', `/api/chats/${chatId}`, alice)).status).toBe(204);
    });

    test('two keys using the same chat id get two independent chats, even while one of them streams', async () => {
      await start();
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['For ', 'Alice'] });
      expect((await postChat(service.url, userTurn(chatId, 'Alice asks', 'Alice prompt'), bearer(alice))).status).toBe(200);
      // Alice's next reply is still streaming when Bob sends his first turn with her id.
      upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
      const stream = await openTurn(chatId, alice);
      upstream.enqueue({ kind: 'stream', content: ['For ', 'Bob'] });
      const bobs = await postChat(service.url, userTurn(chatId, 'Bob asks'), bearer(bob));
      expect(bobs.status).toBe(200);
      expect(bobs.text).toContain('"delta":"Bob"');
      // Bob's context holds his own message and the default prompt: nothing of Alice's.
      expect(upstream.requests.at(-1)!.body.messages).toEqual([
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'Bob asks' },
      ]);
      expect((await call('DELETE', `/api/chat/${chatId}/stream`, alice)).body.status).toBe('cancelled');
      await stream.readToEnd();

      const history = async (key: string) =>
        (await call('GET', `/api/chats/${chatId}/messages`, key)).body.messages.map((message: { role: string; content: string; status: string }) => [
          message.role,
          message.content,
          message.status,
        ]);
      expect(await history(alice)).toEqual([
        ['user', 'Alice asks', 'completed'],
        ['assistant', 'For Alice', 'completed'],
        ['user', 'Stream please', 'completed'],
        ['assistant', 'Still ', 'cancelled'],
      ]);
      expect(await history(bob)).toEqual([
        ['user', 'Bob asks', 'completed'],
        ['assistant', 'For Bob', 'completed'],
      ]);
      expect((await call('GET', `/api/chats/${chatId}`, alice)).body).toMatchObject({ title: 'Alice asks', systemPrompt: 'Alice prompt', messageCount: 4 });
      expect((await call('GET', `/api/chats/${chatId}`, bob)).body).toMatchObject({ title: 'Bob asks', systemPrompt: null, messageCount: 2 });

      // Renaming or deleting one leaves the other alone.
      expect((await call('PATCH', `/api/chats/${chatId}`, bob, { title: 'Bob renamed' })).status).toBe(200);
      expect((await call('DELETE', `/api/chats/${chatId}`, bob)).status).toBe(204);
      expect((await call('GET', `/api/chats/${chatId}`, bob)).status).toBe(404);
      expect((await call('GET', `/api/chats/${chatId}`, alice)).body).toMatchObject({ title: 'Alice asks', messageCount: 4 });
    });
  });

  /** Starts a turn as `key` and returns once its first text delta has arrived. */
  async function openTurn(chatId: string, key: string) {
    const connection = await openSse(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(key) },
      body: JSON.stringify(userTurn(chatId, 'Stream please')),
    });
    await connection.readUntil((text) => text.includes('"delta"'));
    return connection;
  }

  describe('limits', () => {
    test('requests_per_minute answers 429 rate_limited with Retry-After, per key', async () => {
      await start({ configToml: '[limits]\nrequests_per_minute = 3\n' });
      for (let index = 0; index < 3; index += 1) expect((await call('GET', '/api/chats', alice)).status).toBe(200);
      const limited = await call('GET', '/api/chats', alice);
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe('rate_limited');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      expect((await call('GET', '/api/chats', bob)).status).toBe(200);
    });

    test('concurrent_streams answers 429 rate_limited for one stream too many, and stores nothing for it', async () => {
      await start({ configToml: '[limits]\nconcurrent_streams = 1\n' });
      upstream.enqueue({ kind: 'stream', content: ['Busy'], ending: 'stall', cutAfter: 1 });
      const first = await openTurn(randomUUID(), alice);
      const before = await rowCounts();

      const second = await postChat(service.url, userTurn(randomUUID(), 'Me too'), bearer(alice));

      expect(second.status).toBe(429);
      expect(second.json().error.code).toBe('rate_limited');
      expect(second.headers.get('retry-after')).toBe('1');
      expect(await rowCounts()).toEqual(before);
      // Another key has its own allowance.
      expect((await postChat(service.url, userTurn(randomUUID(), 'Hello'), bearer(bob))).status).toBe(200);
      first.hangUp();
    });

    test.each<[string, unknown, string]>([
      ['too many messages', { messages: Array.from({ length: 4 }, () => ({ role: 'user', content: 'x' })) }, 'at most 3 messages per request'],
      ['a message too long', { messages: [{ role: 'user', content: 'x'.repeat(11) }] }, 'content must be at most 10 characters'],
    ])('%s is refused with 400', async (_name, body, message) => {
      await start({ configToml: '[limits]\nmax_messages_per_request = 3\nmax_message_characters = 10\n' });
      const answer = await call('POST', '/api/chat', alice, { chatId: randomUUID(), ...(body as object) });
      expect(answer.status).toBe(400);
      expect(answer.body.error.details.map((detail: { message: string }) => detail.message)).toContain(message);
      expect(await rowCounts()).toEqual([{ chats: 0, messages: 0 }]);
    });
  });

  describe('hardening', () => {
    test('security headers suit a JSON/SSE API, and x-powered-by is off', async () => {
      await start();
      // Every header helmet can set, plus x-powered-by; null: not sent. No HSTS: that belongs to
      // whatever terminates TLS in front of the service.
      const expected = {
        'content-security-policy': "default-src 'none';frame-ancestors 'none'",
        'cross-origin-embedder-policy': null,
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
        'origin-agent-cluster': '?1',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': null,
        'x-content-type-options': 'nosniff',
        'x-dns-prefetch-control': 'off',
        'x-download-options': 'noopen',
        'x-frame-options': 'DENY',
        'x-permitted-cross-domain-policies': 'none',
        'x-powered-by': null,
        'x-xss-protection': '0',
      };
      for (const answer of [await call('GET', '/api/chats', alice), await call('GET', '/healthz', undefined)]) {
        expect(Object.fromEntries(Object.keys(expected).map((name) => [name, answer.headers.get(name)]))).toEqual(expected);
      }
    });

    test('no cross-origin access by default', async () => {
      await start();
      const answer = await call('GET', '/api/chats', alice, undefined, { origin: 'https://evil.example' });
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
      const preflight = await call('OPTIONS', '/api/chat', undefined, undefined, {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    });

    test('the configured origins get CORS and a correct preflight; others do not', async () => {
      await start({ configToml: '[server]\ncors_origins = ["https://app.example.com"]\n' });
      const preflight = await call('OPTIONS', '/api/chat', undefined, undefined, {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(preflight.headers.get('access-control-allow-methods')).toBe('GET,POST,PATCH,DELETE');
      expect(preflight.headers.get('access-control-allow-headers')).toBe('Authorization,Content-Type,Last-Event-ID,X-Request-Id');
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
      const allowed = await call('GET', '/api/chats', alice, undefined, { origin: 'https://app.example.com' });
      expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(allowed.headers.get('access-control-expose-headers')).toContain('X-Request-Id');
      const other = await call('GET', '/api/chats', alice, undefined, { origin: 'https://evil.example' });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    });

    test('"*" allows any origin, without credentials', async () => {
      await start({ configToml: '[server]\ncors_origins = ["*"]\n' });
      const answer = await call('GET', '/api/chats', alice, undefined, { origin: 'https://anywhere.example' });
      expect(answer.headers.get('access-control-allow-origin')).toBe('*');
      expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
    });

    test('logs hold no keys, authorization headers, provider key or message content', async () => {
      await start();
      upstream.enqueue({ kind: 'stream', content: ['secret answer text'] });
      await postChat(service.url, userTurn(randomUUID(), 'secret question text', 'secret system text'), bearer(alice));
      await call('GET', '/api/chats', bob);
      await call('GET', '/api/chats', undefined, undefined, { authorization: 'Bearer lss_guessed-key-value' });
      await call('POST', '/api/chat', alice, undefined, { 'content-type': 'application/json' });
      await fetch(`${service.url}/api/chat`, { method: 'POST', headers: { ...bearer(alice), 'content-type': 'application/json' }, body: '{"secret body text' });

      const text = service.logs.join('\n');
      expect(text).toContain('request completed');
      for (const secret of [alice, bob, alice.slice(12), 'lss_guessed-key-value', upstream.apiKey, 'secret question text', 'secret system text', 'secret answer text', 'secret body text']) {
        expect(text).not.toContain(secret);
      }
      expect(text).not.toMatch(/authorization/i);
    });
  });

  describe('CLI', () => {
    /** Runs the keys CLI from source; by default on the service's database. */
    function runKeysCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
      const env = options.env ?? { ...process.env, DATABASE_URL: service.databaseUrl };
      return spawnSync(process.execPath, ['--import', TSX_LOADER, path.join(__dirname, '..', '..', 'src', 'cli', 'keys.ts'), ...args], {
        cwd: options.cwd,
        env: { ...env, CONFIG_PATH: '' },
        encoding: 'utf8',
      });
    }

    test('creates, lists and revokes keys, with JSON output', async () => {
      await start();
      const run = (...args: string[]) => JSON.parse(runKeysCli([...args, '--json']).stdout);
      const created = run('create', '--name', 'ci');
      expect(created).toEqual({ id: expect.any(String), name: 'ci', prefix: created.key.slice(0, 12), createdAt: expect.any(String), revokedAt: null, key: expect.stringMatching(/^lss_[A-Za-z0-9_-]{43}$/) });
      expect((await call('GET', '/api/chats', created.key)).status).toBe(200);
      // Oldest first; alice and bob may share a millisecond, which leaves their order open.
      const listed = run('list').map((key: { name: string }) => key.name);
      expect([...listed.slice(0, 2).sort(), listed[2]]).toEqual(['alice', 'bob', 'ci']);
      expect(run('revoke', created.id)).toMatchObject({ id: created.id, revokedAt: expect.any(String) });
      expect((await call('GET', '/api/chats', created.key)).status).toBe(401);
    });

    test('reports errors on stderr, as JSON with --json, with an exit code that tells them apart', async () => {
      await start();
      const run = (...args: string[]) => runKeysCli(args);
      const unknownId = run('revoke', 'no-such-id', '--json');
      expect(unknownId).toMatchObject({ status: 1, stdout: '' });
      expect(JSON.parse(unknownId.stderr)).toEqual({ error: { code: 'key_not_found', message: 'No key has the id no-such-id.' } });
      const noName = run('create', '--json');
      expect(noName).toMatchObject({ status: 2, stdout: '' });
      expect(JSON.parse(noName.stderr)).toEqual({ error: { code: 'usage', message: 'create needs --name NAME' } });
      const unknownOption = run('list', '--jsn', '--json');
      expect(unknownOption).toMatchObject({ status: 2, stdout: '' });
      expect(JSON.parse(unknownOption.stderr)).toEqual({ error: { code: 'usage', message: expect.stringContaining("'--jsn'") } });
      // Without --json the same errors are plain text.
      expect(run('revoke', 'no-such-id')).toMatchObject({ status: 1, stdout: '', stderr: 'No key has the id no-such-id.\n' });
      expect(run('--help')).toMatchObject({ status: 0, stdout: expect.stringContaining('npm run keys -- create --name NAME'), stderr: '' });
      // Nothing was created by the refused commands. (Sorted: keys made in the same millisecond
      // have no creation order on PostgreSQL, whose rows carry no insertion sequence.)
      expect((await service.keys!.list()).map((key) => key.name).sort()).toEqual(['alice', 'bob']);
    });

    test('reads DATABASE_URL from .env in its working directory, as the server does', async () => {
      await start();
      const folder = mkdtempSync(path.join(tmpdir(), 'keys-cli-'));
      try {
        writeFileSync(path.join(folder, '.env'), `DATABASE_URL=${service.databaseUrl}\n`);
        const { DATABASE_URL: _unset, ...environment } = process.env;
        const output = runKeysCli(['create', '--name', 'from-dotenv', '--json'], { cwd: folder, env: environment }).stdout;
        const created = JSON.parse(output) as { key: string };
        // The key landed in the service's database: the service accepts it.
        expect((await call('GET', '/api/chats', created.key)).status).toBe(200);
        expect(existsSync(path.join(folder, 'data'))).toBe(false);
      } finally {
        rmSync(folder, { recursive: true, force: true });
      }
    });
  });
});
