/**
 * Moving a real service's SQLite database to PostgreSQL with `npm run db:copy`: the same keys
 * work, and every list, chat and history reads back through the API exactly as it did.
 */
import { randomUUID } from 'node:crypto';
import { eventually, openSse, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { describePostgres } from '../support/postgres-database';
import { runDbCopy } from '../support/run-db-copy';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
const services: TestService[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
});

// Before describePostgres drops the test's databases, which would cut the services' connections.
afterEach(async () => {
  for (const service of services.splice(0)) await service.close();
});

afterAll(async () => {
  await upstream.close();
});

async function call(service: TestService, key: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

/** Every answer a client can read back: each key's chat list, and each chat's summary and history. */
async function everythingVisible(service: TestService, keys: string[], chats: Array<[key: string, chatId: string]>) {
  const answers: Record<string, unknown> = {};
  for (const key of keys) answers[`list ${key.slice(0, 12)}`] = (await call(service, key, 'GET', '/api/chats?limit=100')).json();
  for (const [key, chatId] of chats) {
    answers[`chat ${chatId}`] = (await call(service, key, 'GET', `/api/chats/${chatId}`)).json();
    answers[`history ${chatId}`] = (await call(service, key, 'GET', `/api/chats/${chatId}/messages?limit=500`)).json();
  }
  return answers;
}

describePostgres('db:copy of a database the service made', (databases) => {
  test('moves several keys, chats and replies of every status; the same keys read the same histories through the API', async () => {
    const source = await startTestService({ upstream, auth: true, engine: 'sqlite', configToml: '[streaming]\nresume_grace_seconds = 0\n' });
    services.push(source);
    const alice = (await source.keys!.create('alice')).key;
    const bob = (await source.keys!.create('bob')).key;
    const revoked = await source.keys!.create('gone');
    await source.keys!.revoke(revoked.record.id);
    const chats: Array<[string, string]> = [];
    const turn = async (key: string, chatId: string, content: string) => {
      const answer = await call(source, key, 'POST', '/api/chat', userTurn(chatId, content));
      expect(answer.status).toBe(200);
    };

    // completed, over two turns, with a system prompt and a title set by hand
    const completed = randomUUID();
    chats.push([alice, completed]);
    upstream.enqueue({ kind: 'stream', content: ['Hello', ' Alice'], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } });
    await call(source, alice, 'POST', '/api/chat', userTurn(completed, 'Hi', 'Be brief.'));
    upstream.enqueue({ kind: 'stream', content: ['Again'] });
    await turn(alice, completed, 'And again');
    expect((await call(source, alice, 'PATCH', `/api/chats/${completed}`, { title: 'Greetings' })).status).toBe(200);
    // failed: the provider errs before the first token
    const failed = randomUUID();
    chats.push([alice, failed]);
    upstream.enqueue({ kind: 'error', status: 400, body: { error: { code: 'bad', message: 'Bad request' } } });
    expect((await call(source, alice, 'POST', '/api/chat', userTurn(failed, 'Break'))).status).toBeGreaterThanOrEqual(400);
    // cancelled by the user mid-stream
    const cancelled = randomUUID();
    chats.push([bob, cancelled]);
    upstream.enqueue({ kind: 'stream', content: ['One', ' two', ' three', ' four'], delayMs: 300 });
    const cancelledStream = await openSse(`${source.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' },
      body: JSON.stringify(userTurn(cancelled, 'Count')),
    });
    await cancelledStream.readUntil((text) => text.includes('"delta":"One"'));
    expect((await call(source, bob, 'DELETE', `/api/chat/${cancelled}/stream`)).status).toBe(200);
    await cancelledStream.readToEnd();
    // interrupted: its only client went away, with no grace to resume
    const interrupted = randomUUID();
    chats.push([bob, interrupted]);
    upstream.enqueue({ kind: 'stream', content: ['Going', ' going', ' gone'], delayMs: 300 });
    const leaving = await openSse(`${source.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' },
      body: JSON.stringify(userTurn(interrupted, 'Leave')),
    });
    await leaving.readUntil((text) => text.includes('"delta":"Going"'));
    leaving.hangUp();
    // the same chat id under the other key is another chat
    chats.push([bob, completed]);
    upstream.enqueue({ kind: 'stream', content: ['Bob here'] });
    await turn(bob, completed, 'Same id, other key');
    // a deleted chat is not copied
    const deleted = randomUUID();
    await turn(alice, deleted, 'Delete me');
    expect((await call(source, alice, 'DELETE', `/api/chats/${deleted}`)).status).toBe(204);
    await eventually(async () => {
      const statuses = await source.query<{ status: string }>(`SELECT "status" FROM "Message" WHERE "role" = 'assistant' ORDER BY "seq"`);
      return statuses.every((row) => row.status !== 'streaming') ? true : undefined;
    }, 5_000);
    expect(
      new Set((await source.query<{ status: string }>(`SELECT "status" FROM "Message" WHERE "role" = 'assistant'`)).map((row) => row.status)),
    ).toEqual(new Set(['completed', 'failed', 'cancelled', 'interrupted']));

    const before = await everythingVisible(source, [alice, bob], chats);
    await source.stop();
    const target = await databases.create();
    const copy = await runDbCopy(['--from', source.databaseUrl, '--to', target]);
    expect(copy).toMatchObject({ code: 0, stderr: '' });
    expect(copy.stdout).toMatch(/Copied 3 keys, 5 chats, 12 messages, 0 chat purges from .*; counts verified\.\n$/);

    const moved = await startTestService({ upstream, auth: true, reuseDatabase: target });
    services.push(moved);
    expect(moved.engine).toBe('postgresql');
    expect(await everythingVisible(moved, [alice, bob], chats)).toEqual(before);
    expect((await call(moved, revoked.key, 'GET', '/api/chats')).status).toBe(401);
    // And the moved chats go on.
    upstream.enqueue({ kind: 'stream', content: ['Still here'] });
    expect((await call(moved, alice, 'POST', '/api/chat', userTurn(completed, 'Moved?'))).status).toBe(200);
    expect((await call(moved, alice, 'GET', `/api/chats/${completed}`)).json()).toMatchObject({ messageCount: 6, lastReplyStatus: 'completed' });
  }, 60_000);
});
