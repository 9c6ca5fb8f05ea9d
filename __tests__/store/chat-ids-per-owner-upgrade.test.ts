/**
 * The migration that makes chat ids a namespace per owner rebuilds both tables on SQLite. A
 * database written before it, with data in it, must come through whole: every chat, message, key
 * and owner, every message's order, and the counter that orders new messages after the old ones.
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../../src/build-service';
import { migrateSqlite } from '../../src/store/migrate-sqlite';
import { postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

const MIGRATIONS = path.join(PROJECT_ROOT, 'prisma', 'migrations');
const UPGRADE = '20261130000000_chat_ids_per_owner';
/** The migration after it, which fills the chats' counters from their messages. */
const COUNTERS = '20261201000000_counters_purges_and_leases';
const CLIENT_IDS = '20261202000000_client_message_ids';
const ALICE_KEY = `lss_${'a'.repeat(43)}`;
const BOB_KEY = `lss_${'b'.repeat(43)}`;
const SHARED_ID = '11111111-1111-4111-8111-111111111111';
const BOB_CHAT = '22222222-2222-4222-8222-222222222222';
const LOCAL_CHAT = '33333333-3333-4333-8333-333333333333';

let folder: string;
let upstream: FakeUpstream;
let service: TestService | undefined;

beforeEach(async () => {
  folder = mkdtempSync(path.join(tmpdir(), 'upgrade-'));
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  await service?.close();
  service = undefined;
  await upstream.close();
  rmSync(folder, { recursive: true, force: true });
});

/** The migrations of the release before the upgrade, in a folder of their own. */
function previousMigrations(): string {
  const directory = path.join(folder, 'previous-migrations');
  mkdirSync(directory);
  for (const name of readdirSync(MIGRATIONS)) {
    if (name < UPGRADE) cpSync(path.join(MIGRATIONS, name), path.join(directory, name), { recursive: true });
  }
  return directory;
}

const at = (second: number) => `2026-11-29T10:00:${String(second).padStart(2, '0')}.000+00:00`;

/** Rows as the previous release wrote them: Prisma's timestamps, one id space for every owner's chats. */
function writePreviousRelease(file: string): void {
  migrateSqlite(file, previousMigrations());
  const database = new Database(file);
  const key = database.prepare(`INSERT INTO "ApiKey" ("id", "name", "prefix", "hash", "createdAt") VALUES (?, ?, ?, ?, ?)`);
  for (const [id, name, secret] of [
    ['key-alice', 'alice', ALICE_KEY],
    ['key-bob', 'bob', BOB_KEY],
  ] as const) {
    key.run(id, name, secret.slice(0, 12), createHash('sha256').update(secret).digest('hex'), at(0));
  }
  const chat = database.prepare(
    `INSERT INTO "Chat" ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt") VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  chat.run(SHARED_ID, 'key-alice', 'Alice asks', 'auto', 'Be brief.', at(1), at(6));
  chat.run(BOB_CHAT, 'key-bob', 'Bob asks', 'user', null, at(2), at(5));
  chat.run(LOCAL_CHAT, 'local', null, null, null, at(3), at(3));
  const message = database.prepare(
    `INSERT INTO "Message" ("id", "chatId", "role", "content", "status", "finishReason", "promptTokens", "completionTokens",
       "totalTokens", "usageEstimated", "tokenCount", "model", "timeToFirstTokenMs", "durationMs", "systemPromptHash", "createdAt", "updatedAt")
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  // Interleaved across chats, with tied timestamps: only `seq` keeps each chat's order.
  message.run('m1', SHARED_ID, 'user', 'Alice asks', 'completed', null, null, null, null, 0, 3, null, null, null, null, at(4), at(4));
  message.run('m2', BOB_CHAT, 'user', 'Bob asks', 'completed', null, null, null, null, 0, 3, null, null, null, null, at(4), at(4));
  message.run('m3', SHARED_ID, 'assistant', 'Alice answer', 'completed', 'stop', 20, 2, 22, 0, 2, 'gpt-4o', 120, 300, 'hash', at(4), at(5));
  message.run('m4', BOB_CHAT, 'assistant', 'Bob partial', 'interrupted', null, 18, 2, 20, 1, 2, 'gpt-4o', 90, 200, 'hash', at(4), at(5));
  database.close();
}

function rows(file: string) {
  const database = new Database(file, { readonly: true });
  try {
    return {
      chats: database.prepare(`SELECT "ownerId", "id", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt" FROM "Chat" ORDER BY "createdAt"`).all(),
      messages: database
        .prepare(`SELECT "seq", "id", "ownerId", "chatId", "role", "content", "status", "usageEstimated", "updatedAt" FROM "Message" ORDER BY "seq"`)
        .all(),
      keys: database.prepare(`SELECT "id", "name" FROM "ApiKey" ORDER BY "id"`).all(),
    };
  } finally {
    database.close();
  }
}

async function get(path: string, key: string) {
  const response = await fetch(`${service!.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: response.status, body: (await response.json()) as any };
}

test('a database of the previous release keeps every chat, message, key and owner through the upgrade', async () => {
  const file = path.join(folder, 'chat.db');
  writePreviousRelease(file);

  service = await startTestService({ upstream, auth: true, reuseDatabase: `file:${file}` });
  expect(service.appliedMigrations).toEqual([UPGRADE, COUNTERS, CLIENT_IDS]);
  await service.stop();
  expect(rows(file)).toEqual({
    chats: [
      { ownerId: 'key-alice', id: SHARED_ID, title: 'Alice asks', titleSource: 'auto', systemPrompt: 'Be brief.', createdAt: at(1), updatedAt: at(6) },
      { ownerId: 'key-bob', id: BOB_CHAT, title: 'Bob asks', titleSource: 'user', systemPrompt: null, createdAt: at(2), updatedAt: at(5) },
      { ownerId: 'local', id: LOCAL_CHAT, title: null, titleSource: null, systemPrompt: null, createdAt: at(3), updatedAt: at(3) },
    ],
    messages: [
      { seq: 1, id: 'm1', ownerId: 'key-alice', chatId: SHARED_ID, role: 'user', content: 'Alice asks', status: 'completed', usageEstimated: 0, updatedAt: at(4) },
      { seq: 2, id: 'm2', ownerId: 'key-bob', chatId: BOB_CHAT, role: 'user', content: 'Bob asks', status: 'completed', usageEstimated: 0, updatedAt: at(4) },
      { seq: 3, id: 'm3', ownerId: 'key-alice', chatId: SHARED_ID, role: 'assistant', content: 'Alice answer', status: 'completed', usageEstimated: 0, updatedAt: at(5) },
      { seq: 4, id: 'm4', ownerId: 'key-bob', chatId: BOB_CHAT, role: 'assistant', content: 'Bob partial', status: 'interrupted', usageEstimated: 1, updatedAt: at(5) },
    ],
    keys: [
      { id: 'key-alice', name: 'alice' },
      { id: 'key-bob', name: 'bob' },
    ],
  });
});

test('after the upgrade each owner reads and continues their own chats, and may reuse another owner’s id', async () => {
  const file = path.join(folder, 'chat.db');
  writePreviousRelease(file);
  service = await startTestService({ upstream, auth: true, reuseDatabase: `file:${file}` });

  // The counters the chats keep since 20261201000000 are filled from the messages they had.
  const summary = (chat: { chatId: string; messageCount: number; lastReplyStatus: string | null }) => [chat.chatId, chat.messageCount, chat.lastReplyStatus];
  expect((await get('/api/chats', ALICE_KEY)).body.chats.map(summary)).toEqual([[SHARED_ID, 2, 'completed']]);
  expect((await get('/api/chats', BOB_KEY)).body.chats.map(summary)).toEqual([[BOB_CHAT, 2, 'interrupted']]);
  const history = await get(`/api/chats/${SHARED_ID}/messages`, ALICE_KEY);
  expect(history.body.messages.map((message: { id: string; content: string }) => [message.id, message.content])).toEqual([
    ['m1', 'Alice asks'],
    ['m3', 'Alice answer'],
  ]);

  // Alice's next turn gets her old history as context, and is stored after it.
  upstream.enqueue({ kind: 'stream', content: ['Again'] });
  expect((await postChat(service.url, userTurn(SHARED_ID, 'And now?'), { authorization: `Bearer ${ALICE_KEY}` })).status).toBe(200);
  expect(upstream.requests.at(-1)!.body.messages).toEqual([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Alice asks' },
    { role: 'assistant', content: 'Alice answer' },
    { role: 'user', content: 'And now?' },
  ]);
  // Bob takes the id Alice uses: a chat of his own, beside hers.
  upstream.enqueue({ kind: 'stream', content: ['Yours'] });
  expect((await postChat(service.url, userTurn(SHARED_ID, 'Mine too'), { authorization: `Bearer ${BOB_KEY}` })).status).toBe(200);
  expect(await service.query(`SELECT "seq", "ownerId", "content" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"`, SHARED_ID)).toEqual([
    { seq: 1, ownerId: 'key-alice', content: 'Alice asks' },
    { seq: 3, ownerId: 'key-alice', content: 'Alice answer' },
    { seq: 5, ownerId: 'key-alice', content: 'And now?' },
    { seq: 6, ownerId: 'key-alice', content: 'Again' },
    { seq: 7, ownerId: 'key-bob', content: 'Mine too' },
    { seq: 8, ownerId: 'key-bob', content: 'Yours' },
  ]);
});

test('a second start finds the upgrade done and applies nothing', async () => {
  const file = path.join(folder, 'chat.db');
  writePreviousRelease(file);
  expect(migrateSqlite(file, MIGRATIONS)).toEqual([UPGRADE, COUNTERS, CLIENT_IDS]);
  const before = rows(file);
  expect(migrateSqlite(file, MIGRATIONS)).toEqual([]);
  expect(rows(file)).toEqual(before);
});
