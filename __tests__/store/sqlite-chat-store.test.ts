/**
 * On SQLite, the writes and the per-turn reads run on prepared statements instead of Prisma.
 * Prisma stays the portable store (PostgreSQL) and reads the same rows, so the two must agree to
 * the column: the same operations through each give the same rows and the same answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../../src/build-service';
import type { ChatStore, FinishedReply, NewTurn } from '../../src/chat/ports';
import type { KeyStore } from '../../src/auth/api-keys';
import { PrismaClient } from '../../src/store/generated/sqlite/client';
import { migrateSqlite } from '../../src/store/migrate-sqlite';
import { openSqliteStore } from '../../src/store/open-sqlite-store';
import { PrismaChatStore } from '../../src/store/prisma-chat-store';
import { PrismaKeyStore } from '../../src/store/prisma-key-store';

const MIGRATIONS = path.join(PROJECT_ROOT, 'prisma', 'migrations');
const PRISMA_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/;
const CHAT_A = '0b9e1d52-6c43-4b8e-9d0a-2f5b6c7d8e9f';
const CHAT_B = '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a';

let folder: string;

beforeAll(() => {
  folder = mkdtempSync(path.join(tmpdir(), 'store-'));
});

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

interface Stores {
  store: ChatStore;
  keys: KeyStore;
  file: string;
}

async function prismaOnly(file: string): Promise<Stores> {
  migrateSqlite(file, MIGRATIONS);
  const prisma = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url: file }) });
  return { store: new PrismaChatStore(prisma), keys: new PrismaKeyStore(prisma), file };
}

async function preparedStatements(file: string): Promise<Stores> {
  const { store, keys } = await openSqliteStore({ databaseUrl: `file:${file}`, migrationsDir: MIGRATIONS, lockWaitMs: 1_000, owner: true });
  return { store, keys, file };
}

function turn(chatId: string, replyId: string, extra: Partial<NewTurn> = {}): NewTurn {
  return {
    chatId,
    ownerId: 'owner-1',
    systemPrompt: undefined,
    title: 'First question',
    messages: [{ role: 'user', content: 'First question, with "quotes" and ünïcode', tokenCount: 11 }],
    reply: { id: replyId, model: 'gpt-4o', systemPromptHash: 'hash-1' },
    ...extra,
  };
}

const finished: FinishedReply = {
  content: 'The answer.',
  status: 'completed',
  finishReason: 'stop',
  usage: { promptTokens: 20, completionTokens: 3, totalTokens: 23 },
  usageEstimated: false,
  tokenCount: 3,
  timeToFirstTokenMs: 12,
  durationMs: 40,
};

/** Runs one life of two chats and returns every answer the store gave. */
async function exercise({ store, keys }: Stores) {
  const answers: Record<string, unknown> = {};
  answers.unknownBefore = await store.loadRecent(CHAT_A, 'owner-1', 10);
  await store.beginTurn(
    turn(CHAT_A, 'reply-a1', {
      messages: [
        { role: 'user', content: 'First question', tokenCount: 3 },
        { role: 'user', content: 'and a second line', tokenCount: 4 },
      ],
    }),
  );
  answers.strangersView = await store.loadRecent(CHAT_A, 'owner-2', 10);
  await store.saveProgress('reply-a1', 'The ans');
  answers.midStream = await store.loadRecent(CHAT_A, 'owner-1', 10);
  await store.finishReply('reply-a1', finished);
  await store.saveProgress('reply-a1', 'a late checkpoint is ignored');
  await store.beginTurn(turn(CHAT_A, 'reply-a2', { systemPrompt: 'Be brief.', title: 'not used: the chat has a title' }));
  await store.saveProgress('reply-a2', 'Cut');
  answers.interrupted = await store.interruptAbandonedReplies();
  await store.beginTurn(turn(CHAT_A, 'reply-a3'));
  await store.finishReply('reply-a3', { ...finished, status: 'failed', finishReason: 'error', usageEstimated: true });
  answers.recentTwo = await store.loadRecent(CHAT_A, 'owner-1', 2);
  answers.renamedByStranger = await store.updateChat(CHAT_A, 'owner-2', { title: 'Mine now' });
  answers.renamed = await store.updateChat(CHAT_A, 'owner-1', { title: 'Chosen title' });
  await store.setGeneratedTitle(CHAT_A, 'owner-1', 'A model title does not replace a chosen one');
  answers.promptCleared = await store.updateChat(CHAT_A, 'owner-1', { systemPrompt: null });

  await store.beginTurn(turn(CHAT_B, 'reply-b1', { systemPrompt: 'Answer in French.' }));
  await store.setGeneratedTitle(CHAT_B, 'owner-1', 'Question about French');
  answers.finishedReply = await store.finishReply('reply-b1', finished);
  answers.missingReply = await store.finishReply('no-such-reply', finished);
  answers.deletedByStranger = await store.deleteChat(CHAT_B, 'owner-2');
  answers.chatsBeforeDelete = await store.listChats('owner-1', { limit: 10 });
  answers.deleted = await store.deleteChat(CHAT_B, 'owner-1');
  answers.deletedAgain = await store.deleteChat(CHAT_B, 'owner-1');
  answers.messagesA = await store.listMessages(CHAT_A, 'owner-1', { limit: 50 });

  // Another owner's chat with the same id is another chat.
  await store.beginTurn(turn(CHAT_A, 'reply-x1', { ownerId: 'owner-2', title: 'Same id, other owner' }));
  await store.finishReply('reply-x1', { ...finished, content: 'For owner 2.' });
  answers.sameIdOtherOwner = await store.loadRecent(CHAT_A, 'owner-2', 10);
  answers.sameIdFirstOwner = await store.loadRecent(CHAT_A, 'owner-1', 1);
  answers.chatsOfOwner2 = await store.listChats('owner-2', { limit: 10 });
  answers.messagesOfOwner2 = await store.listMessages(CHAT_A, 'owner-2', { limit: 50 });
  answers.deletedForOwner2 = await store.deleteChat(CHAT_A, 'owner-2');

  await keys.insertKey({ id: 'key-1', name: 'app', prefix: 'lss_abcdefgh', hash: 'f'.repeat(64) });
  await keys.revokeKey('key-1');
  answers.keys = await keys.findKeysByPrefix('lss_abcdefgh');
  answers.noKeys = await keys.findKeysByPrefix('lss_zzzzzzzz');
  return answers;
}

/** Every row of both tables, with generated ids and times replaced by what they must look like. */
function dump(file: string) {
  const database = new Database(file, { readonly: true });
  try {
    const rows = (sql: string) => database.prepare(sql).all() as Array<Record<string, unknown>>;
    return normalize({
      chats: rows(`SELECT * FROM "Chat" ORDER BY "id"`),
      messages: rows(`SELECT * FROM "Message" ORDER BY "seq"`),
      keys: rows(`SELECT * FROM "ApiKey" ORDER BY "id"`),
    });
  } finally {
    database.close();
  }
}

function normalize(value: unknown): unknown {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'invalid date' : 'a Date';
  if (typeof value === 'string' && PRISMA_TIMESTAMP.test(value)) return 'a Prisma timestamp';
  if (typeof value === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(value)) {
    return value === CHAT_A || value === CHAT_B ? value : 'a random UUID';
  }
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, normalize(inner)]));
  }
  return value;
}

test('prepared statements write the rows Prisma writes and give the answers Prisma gives', async () => {
  const reference = await prismaOnly(path.join(folder, 'prisma.db'));
  const fast = await preparedStatements(path.join(folder, 'prepared.db'));
  try {
    const expected = await exercise(reference);
    const actual = await exercise(fast);
    expect(normalize(actual)).toEqual(normalize(expected));
    expect(dump(fast.file)).toEqual(dump(reference.file));

    // The comparison is only worth something if the run did what it says.
    expect(expected).toMatchObject({
      strangersView: null,
      interrupted: 1,
      renamedByStranger: null,
      finishedReply: true,
      missingReply: false,
      sameIdOtherOwner: { systemPrompt: null, messageCount: 2, messages: [{ content: 'First question, with "quotes" and ünïcode' }, { content: 'For owner 2.' }] },
      sameIdFirstOwner: { messageCount: 7, messages: [{ id: 'reply-a3', status: 'failed' }] },
      chatsOfOwner2: { chats: [{ chatId: CHAT_A, title: 'Same id, other owner', messageCount: 2 }], hasMore: false },
      deletedForOwner2: true,
      deletedByStranger: false,
      deleted: true,
      deletedAgain: false,
    });
    expect(dump(fast.file)).toMatchObject({
      chats: [{ id: CHAT_A, title: 'Chosen title', titleSource: 'user', systemPrompt: null, ownerId: 'owner-1' }],
      messages: [
        { id: 'a random UUID', ownerId: 'owner-1', chatId: CHAT_A, content: 'First question', status: 'completed', tokenCount: 3, usageEstimated: 0 },
        { id: 'a random UUID', content: 'and a second line', status: 'completed', tokenCount: 4 },
        { id: 'reply-a1', content: 'The answer.', status: 'completed', totalTokens: 23, model: 'gpt-4o', systemPromptHash: 'hash-1' },
        { role: 'user', status: 'completed' },
        { id: 'reply-a2', content: 'Cut', status: 'interrupted', finishReason: null },
        { role: 'user', status: 'completed' },
        { id: 'reply-a3', status: 'failed', finishReason: 'error', usageEstimated: 1 },
      ],
      keys: [{ id: 'key-1', revokedAt: 'a Prisma timestamp' }],
    });
  } finally {
    await reference.store.close();
    await fast.store.close();
  }
});

test('a turn that fails part-way leaves nothing behind', async () => {
  const fast = await preparedStatements(path.join(folder, 'atomic.db'));
  try {
    await fast.store.beginTurn(turn(CHAT_A, 'reply-1'));
    // The reply id is taken, so the last insert of this turn fails: the chat touch and the
    // user message before it must be rolled back with it.
    // (Not `rejects.toThrow`: better-sqlite3's errors are not native Error objects, their
    // Object.prototype.toString is "[object Object]", and jest's toThrow does not always take them.)
    const failure = await fast.store.beginTurn(turn(CHAT_A, 'reply-1', { systemPrompt: 'changed' })).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ message: 'UNIQUE constraint failed: Message.id' });
    const database = new Database(fast.file, { readonly: true });
    try {
      expect(database.prepare(`SELECT "role", "status" FROM "Message" ORDER BY "seq"`).all()).toEqual([
        { role: 'user', status: 'completed' },
        { role: 'assistant', status: 'streaming' },
      ]);
      expect(database.prepare(`SELECT "systemPrompt" FROM "Chat"`).all()).toEqual([{ systemPrompt: null }]);
    } finally {
      database.close();
    }
  } finally {
    await fast.store.close();
  }
});
