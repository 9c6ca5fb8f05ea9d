/**
 * One set of cases for every engine's store: what `ChatStore` and `KeyStore` promise in their
 * TSDoc (src/chat/ports.ts, src/auth/api-keys.ts), checked on the answers and, where the promise is
 * about rows, on the rows themselves. SQLite runs on a temporary file; PostgreSQL on a database of
 * this file's own, and is skipped with one line where no PostgreSQL answers.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import type { ApiKeyRecord, KeyStore } from '../../src/auth/api-keys';
import { PROJECT_ROOT } from '../../src/build-service';
import type { ChatMessage, ChatStore, ChatSummary, FinishedReply, NewTurn, Role, StoredMessage, TurnOpening } from '../../src/chat/ports';
import { AppError } from '../../src/errors/app-error';
import { openStore, type OpenedStore } from '../../src/store/open-store';
import { describePostgres } from '../support/postgres-database';

const PRISMA_DIR = path.join(PROJECT_ROOT, 'prisma');
const MODEL = 'gpt-4o';
const PROMPT_HASH = 'a'.repeat(64);

type Row = Record<string, unknown>;

/** The rows of a database, read and written beside the store, in SQL both engines accept (`$1` parameters). */
interface Rows {
  all(sql: string, parameters?: unknown[]): Promise<Row[]>;
  /** Resolves with how many rows changed. */
  run(sql: string, parameters?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

interface Engine {
  name: 'sqlite' | 'postgresql';
  /** The URL of a new, empty database. */
  newDatabase(): Promise<string>;
  connect(url: string): Promise<Rows>;
  /**
   * PostgreSQL: every instance opens a store of its own on the database. SQLite: one server owns
   * the file, so instances share its store and differ only by the instanceId they pass.
   */
  storePerInstance: boolean;
}

interface TestDatabase {
  opened: OpenedStore;
  store: ChatStore;
  keys: KeyStore;
  rows: Rows;
  /** `count` stores acting as separate instances on this database, the first being `opened`. */
  instances(count: number): Promise<OpenedStore[]>;
  close(): Promise<void>;
}

function open(url: string): Promise<OpenedStore> {
  return openStore({ databaseUrl: url, prismaDir: PRISMA_DIR, lockWaitMs: 2_000, owner: true, poolSize: 4, statementTimeoutMs: 10_000 });
}

async function openDatabase(engine: Engine, url: string): Promise<TestDatabase> {
  const opened = await open(url);
  const rows = await engine.connect(url);
  const others: OpenedStore[] = [];
  return {
    opened,
    store: opened.store,
    keys: opened.keys,
    rows,
    async instances(count) {
      if (!engine.storePerInstance) return Array.from({ length: count }, () => opened);
      while (others.length < count - 1) others.push(await open(url));
      return [opened, ...others.slice(0, count - 1)];
    },
    async close() {
      for (const each of [...others, opened]) await each.store.close();
      await rows.close();
    },
  };
}

// --- What the tests write and what they expect back ---------------------------------------------

function newTurn(
  chatId: string,
  ownerId: string,
  instanceId: string,
  options: { replyId?: string; messages?: Array<string | ChatMessage>; systemPrompt?: string; title?: string } = {},
): NewTurn {
  const messages = (options.messages ?? ['Hello']).map((message) => {
    const { role, content } = typeof message === 'string' ? { role: 'user' as Role, content: message } : message;
    return { role, content, tokenCount: content.length };
  });
  return {
    chatId,
    ownerId,
    systemPrompt: options.systemPrompt,
    title: options.title ?? 'Automatic title',
    messages,
    reply: { id: options.replyId ?? randomUUID(), model: MODEL, systemPromptHash: PROMPT_HASH, instanceId },
  };
}

const FINISHED: FinishedReply = {
  content: 'The whole answer.',
  status: 'completed',
  finishReason: 'stop',
  usage: { promptTokens: 20, completionTokens: 4, totalTokens: 24 },
  usageEstimated: false,
  tokenCount: 4,
  timeToFirstTokenMs: 12,
  durationMs: 40,
};

/** A message of a turn, as read back. */
function storedMessage(content: string, role: Role = 'user'): StoredMessage {
  return {
    id: expect.any(String),
    role,
    content,
    status: 'completed',
    finishReason: null,
    createdAt: expect.any(Date),
    tokenCount: content.length,
    promptTokens: null,
    completionTokens: null,
    totalTokens: null,
    usageEstimated: false,
    model: null,
    timeToFirstTokenMs: null,
    durationMs: null,
    systemPromptHash: null,
  };
}

/** A reply as read back: still streaming with `content`, or as `finished` recorded it. */
function storedReply(id: string, state: { streaming: string } | FinishedReply): StoredMessage {
  const opened: StoredMessage = {
    id,
    role: 'assistant',
    content: '',
    status: 'streaming',
    finishReason: null,
    createdAt: expect.any(Date),
    tokenCount: null,
    promptTokens: null,
    completionTokens: null,
    totalTokens: null,
    usageEstimated: false,
    model: MODEL,
    timeToFirstTokenMs: null,
    durationMs: null,
    systemPromptHash: PROMPT_HASH,
  };
  if ('streaming' in state) return { ...opened, content: state.streaming };
  return {
    ...opened,
    content: state.content,
    status: state.status,
    finishReason: state.finishReason,
    tokenCount: state.tokenCount,
    ...state.usage,
    usageEstimated: state.usageEstimated,
    timeToFirstTokenMs: state.timeToFirstTokenMs,
    durationMs: state.durationMs,
  };
}

function keyFields(name: string, prefix = `lss_${randomBytes(6).toString('base64url')}`) {
  return { id: randomUUID(), name, prefix, hash: createHash('sha256').update(randomUUID()).digest('hex') };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('resolved, where a rejection was expected'),
    (error: unknown) => error,
  );
}

async function expectAppError(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe(code);
}

const byId = <T extends { id: string }>(list: T[]) => [...list].sort((a, b) => a.id.localeCompare(b.id));

/** A timestamp for a raw write, in the form the engine stores `sample` in. */
function timestampLike(sample: unknown, date: Date): unknown {
  if (sample instanceof Date) return date;
  if (typeof sample === 'number') return date.getTime();
  if (typeof sample === 'string' && sample.endsWith('Z')) return date.toISOString();
  if (typeof sample === 'string' && sample.endsWith('+00:00')) return date.toISOString().replace('Z', '+00:00');
  throw new Error(`A timestamp stored as ${JSON.stringify(sample)} is not one this test knows how to write.`);
}

// --- The cases ------------------------------------------------------------------------------------

function storeConformance(engine: Engine): void {
  let shared: TestDatabase;
  const ofThisTest: TestDatabase[] = [];

  beforeAll(async () => {
    shared = await openDatabase(engine, await engine.newDatabase());
  });

  afterEach(async () => {
    for (const database of ofThisTest.splice(0)) await database.close();
  });

  afterAll(async () => {
    await shared?.close();
  });

  /** A database for this test alone, for what the store does across chats (sweeps, keys). */
  async function freshDatabase(): Promise<TestDatabase> {
    const database = await openDatabase(engine, await engine.newDatabase());
    ofThisTest.push(database);
    return database;
  }

  const owner = () => `owner-${randomUUID()}`;
  const instance = (name: string) => `${name}-${randomUUID()}`;

  async function count(rows: Rows, sql: string, parameters: unknown[] = []): Promise<number> {
    const [row] = await rows.all(sql, parameters);
    return Number(row?.n);
  }

  const messageRows = (rows: Rows, ownerId: string, chatId: string) =>
    count(rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2`, [ownerId, chatId]);

  async function statusOf(rows: Rows, messageId: string): Promise<string | undefined> {
    const [row] = await rows.all(`SELECT "status" FROM "Message" WHERE "id" = $1`, [messageId]);
    return row?.status as string | undefined;
  }

  describe('a database opened by openStore', () => {
    test('is migrated, says which engine it is, answers ping and closes', async () => {
      const migrations = readdirSync(path.join(PRISMA_DIR, ...(engine.name === 'sqlite' ? ['migrations'] : ['postgresql', 'migrations'])), {
        withFileTypes: true,
      })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name)
        .sort();
      const url = await engine.newDatabase();
      const opened = await open(url);
      try {
        expect([...opened.appliedMigrations].sort()).toEqual(migrations);
        expect(opened.describe.engine).toBe(engine.name);
        await expect(opened.store.ping()).resolves.toBeUndefined();
      } finally {
        await opened.store.close();
      }
      // Closed, the database can be opened again, and nothing is left to apply.
      const again = await open(url);
      try {
        expect(again.appliedMigrations).toEqual([]);
        await expect(again.store.ping()).resolves.toBeUndefined();
      } finally {
        await again.store.close();
      }
    });
  });

  describe('turns, checkpoints and finished replies', () => {
    test('a new turn creates the chat with its prompt, title, messages and the reply opened streaming', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toBeNull();
      const turn = newTurn(chatId, ownerId, instance('a'), {
        messages: ['First question, with "quotes" and ünïcode', { role: 'assistant', content: 'An earlier answer' }, 'A follow-up'],
        systemPrompt: 'Be brief.',
        title: 'First question',
      });
      await shared.store.beginTurn(turn);

      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual({
        systemPrompt: 'Be brief.',
        messageCount: 4,
        messages: [
          storedMessage('First question, with "quotes" and ünïcode'),
          storedMessage('An earlier answer', 'assistant'),
          storedMessage('A follow-up'),
          storedReply(turn.reply.id, { streaming: '' }),
        ],
      });
      const summary = await shared.store.getChat(chatId, ownerId);
      expect(summary).toEqual<ChatSummary>({
        chatId,
        title: 'First question',
        systemPrompt: 'Be brief.',
        createdAt: expect.any(Date),
        updatedAt: expect.any(Date),
        messageCount: 4,
        lastReplyStatus: 'streaming',
      });
      expect(await shared.store.listChats(ownerId, { limit: 10 })).toEqual({ chats: [summary], hasMore: false });
      // Each message its own row, the reply recorded with the instance that opened it.
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(4);
      expect(await shared.rows.all(`SELECT "instanceId", "status" FROM "Message" WHERE "id" = $1`, [turn.reply.id])).toEqual([
        { instanceId: turn.reply.instanceId, status: 'streaming' },
      ]);
    });

    test('checkpoints are read mid-stream; after finishReply a late checkpoint is ignored and the finished fields read back', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const turn = newTurn(chatId, ownerId, instance('a'), { messages: ['Question'] });
      const replyId = turn.reply.id;
      await shared.store.beginTurn(turn);

      await shared.store.saveProgress(replyId, 'The wh');
      expect((await shared.store.loadRecent(chatId, ownerId, 1))?.messages).toEqual([storedReply(replyId, { streaming: 'The wh' })]);
      await shared.store.saveProgress(replyId, 'The whole');
      expect((await shared.store.loadRecent(chatId, ownerId, 1))?.messages).toEqual([storedReply(replyId, { streaming: 'The whole' })]);
      expect((await shared.store.getChat(chatId, ownerId))?.lastReplyStatus).toBe('streaming');

      expect(await shared.store.finishReply(replyId, FINISHED)).toBe(true);
      await shared.store.saveProgress(replyId, 'A checkpoint that arrives too late');

      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual({
        systemPrompt: null,
        messageCount: 2,
        messages: [storedMessage('Question'), storedReply(replyId, FINISHED)],
      });
      expect(await shared.store.listMessages(chatId, ownerId, { limit: 10 })).toEqual({
        messages: [storedMessage('Question'), storedReply(replyId, FINISHED)],
        hasMore: false,
      });
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ messageCount: 2, lastReplyStatus: 'completed' });
      expect(await shared.rows.all(`SELECT "content", "status", "totalTokens" FROM "Message" WHERE "id" = $1`, [replyId])).toEqual([
        { content: FINISHED.content, status: 'completed', totalTokens: 24 },
      ]);
    });

    const endings: Array<[string, FinishedReply]> = [
      ['completed', FINISHED],
      [
        'cancelled',
        { ...FINISHED, content: 'Cut sh', status: 'cancelled', finishReason: null, usageEstimated: true, timeToFirstTokenMs: null, durationMs: 5 },
      ],
      ['failed', { ...FINISHED, content: '', status: 'failed', finishReason: 'error', tokenCount: 0, usage: { promptTokens: 20, completionTokens: 0, totalTokens: 20 } }],
      ['interrupted', { ...FINISHED, content: 'Half', status: 'interrupted', finishReason: 'other', usageEstimated: true }],
      ['completed (length)', { ...FINISHED, finishReason: 'length' }],
    ];
    test.each(endings)('a reply finished %s reads back as recorded, and the chat summary follows it', async (_name, finished) => {
      const ownerId = owner();
      const chatId = randomUUID();
      const first = newTurn(chatId, ownerId, instance('a'));
      await shared.store.beginTurn(first);
      expect(await shared.store.finishReply(first.reply.id, FINISHED)).toBe(true);
      const second = newTurn(chatId, ownerId, instance('a'), { messages: ['Again'] });
      await shared.store.beginTurn(second);
      expect(await shared.store.finishReply(second.reply.id, finished)).toBe(true);

      expect(await shared.store.loadRecent(chatId, ownerId, 2)).toEqual({
        systemPrompt: null,
        messageCount: 4,
        messages: [storedMessage('Again'), storedReply(second.reply.id, finished)],
      });
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ messageCount: 4, lastReplyStatus: finished.status });
    });

    test('finishReply is false for a reply that does not exist; a checkpoint of one writes nothing', async () => {
      const rowsBefore = await count(shared.rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "Message"`);
      expect(await shared.store.finishReply(randomUUID(), FINISHED)).toBe(false);
      await expect(shared.store.saveProgress(randomUUID(), 'Nothing to save into')).resolves.toBeUndefined();
      expect(await count(shared.rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "Message"`)).toBe(rowsBefore);
    });

    test('a turn that fails part-way (its reply id is taken) leaves nothing behind: no message, no count, no prompt', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const me = instance('a');
      const first = newTurn(chatId, ownerId, me);
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, FINISHED);
      const before = await shared.store.getChat(chatId, ownerId);
      // The last row of this turn collides with an existing id, so the whole turn must roll back.
      const failing = newTurn(chatId, ownerId, me, { replyId: first.reply.id, messages: ['Never stored'], systemPrompt: 'Never set' });
      const error = (await rejection(shared.store.beginTurn(failing))) as { message?: unknown };
      expect(String(error.message)).toMatch(/UNIQUE constraint failed: Message\.id|duplicate key value violates unique constraint "Message_id_key" \(SQLSTATE 23505\)/);
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(2);
      expect(await shared.store.getChat(chatId, ownerId)).toEqual(before);
      expect((await shared.store.loadRecent(chatId, ownerId, 10))!.systemPrompt).toBeNull();
    });

    test('the prompt changes only when a turn sends one; the title is set once, a generated one replaces it, a user title stays', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const first = newTurn(chatId, ownerId, instance('a'), { systemPrompt: 'Be brief.', title: 'Automatic title' });
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, FINISHED);
      await shared.store.setGeneratedTitle(chatId, ownerId, 'Generated title');
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ title: 'Generated title', systemPrompt: 'Be brief.' });

      const second = newTurn(chatId, ownerId, instance('a'), { title: 'Not used: the chat has a title' });
      await shared.store.beginTurn(second);
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ title: 'Generated title', systemPrompt: 'Be brief.' });

      expect(await shared.store.updateChat(chatId, ownerId, { title: 'Chosen title' })).toEqual<ChatSummary>({
        chatId,
        title: 'Chosen title',
        systemPrompt: 'Be brief.',
        createdAt: expect.any(Date),
        updatedAt: expect.any(Date),
        messageCount: 4,
        lastReplyStatus: 'streaming',
      });
      await shared.store.setGeneratedTitle(chatId, ownerId, 'A generated title does not replace a chosen one');
      expect((await shared.store.getChat(chatId, ownerId))?.title).toBe('Chosen title');

      expect(await shared.store.updateChat(chatId, ownerId, { systemPrompt: null })).toMatchObject({ title: 'Chosen title', systemPrompt: null });
      expect(await shared.store.updateChat(chatId, ownerId, { systemPrompt: 'Answer in French.' })).toMatchObject({
        title: 'Chosen title',
        systemPrompt: 'Answer in French.',
      });
      await shared.store.finishReply(second.reply.id, FINISHED);
      await shared.store.beginTurn(newTurn(chatId, ownerId, instance('a'), { systemPrompt: 'From the turn.' }));
      expect((await shared.store.loadRecent(chatId, ownerId, 1))?.systemPrompt).toBe('From the turn.');
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ title: 'Chosen title', systemPrompt: 'From the turn.', messageCount: 6 });

      expect(await shared.store.updateChat(chatId, ownerId, {})).toMatchObject({ chatId, title: 'Chosen title', systemPrompt: 'From the turn.' });
      expect(await shared.store.updateChat(randomUUID(), ownerId, { title: 'Nobody' })).toBeNull();
      await expect(shared.store.setGeneratedTitle(randomUUID(), ownerId, 'Nobody')).resolves.toBeUndefined();
    });
  });

  describe('opening a turn with its history', () => {
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    /** newTurn as openTurn takes it: the store hashes the prompt in force. */
    function opening(turn: NewTurn, read: { defaultPrompt?: string; historyLimit?: number; maxPromptBytes?: number | null } = {}): TurnOpening {
      const { systemPromptHash: _hash, ...reply } = turn.reply;
      return { ...turn, reply, defaultPrompt: read.defaultPrompt ?? 'The default.', historyLimit: read.historyLimit ?? 10, maxPromptBytes: read.maxPromptBytes ?? null };
    }

    test('a new chat: nothing before it, the turn written, the reply hashed with the default prompt', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const turn = newTurn(chatId, ownerId, instance('a'), { messages: ['First'] });
      expect(await shared.store.openTurn(opening(turn))).toEqual({ stored: true, before: null });
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual({
        systemPrompt: null,
        messageCount: 2,
        messages: [storedMessage('First'), { ...storedReply(turn.reply.id, { streaming: '' }), systemPromptHash: sha256('The default.') }],
      });
    });

    test('an existing chat: the history as it was before the turn (never the new rows), newest `historyLimit` of it, and the count', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const self = instance('a');
      const first = newTurn(chatId, ownerId, self, { messages: ['m1'], systemPrompt: 'Kept prompt.' });
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, FINISHED);
      const second = newTurn(chatId, ownerId, self, { messages: ['m2'] });
      const opened = await shared.store.openTurn(opening(second, { historyLimit: 1 }));
      expect(opened).toEqual({ stored: true, before: { systemPrompt: 'Kept prompt.', messageCount: 2, messages: [storedReply(first.reply.id, FINISHED)] } });
      // The chat's own prompt was in force.
      const [reply] = await shared.rows.all(`SELECT "systemPromptHash" FROM "Message" WHERE "id" = $1`, [second.reply.id]);
      expect(reply).toEqual({ systemPromptHash: sha256('Kept prompt.') });

      const third = newTurn(chatId, ownerId, self, { messages: ['m3'], systemPrompt: 'New prompt.' });
      await shared.store.finishReply(second.reply.id, FINISHED);
      const again = await shared.store.openTurn(opening(third, { historyLimit: 0 }));
      expect(again).toEqual({ stored: true, before: { systemPrompt: 'Kept prompt.', messageCount: 4, messages: [] } });
      expect((await shared.store.loadRecent(chatId, ownerId, 10))?.messages.map((message) => [message.content, message.systemPromptHash])).toEqual([
        ['m1', null],
        ['The whole answer.', PROMPT_HASH],
        ['m2', null],
        ['The whole answer.', sha256('Kept prompt.')],
        ['m3', null],
        ['', sha256('New prompt.')],
      ]);
    });

    test('a prompt in force over the byte bound: nothing written, the history read; the bound counts UTF-8 bytes', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const self = instance('a');
      const prompt = 'Ünïcode prompt'; // 14 characters, 16 bytes
      const first = newTurn(chatId, ownerId, self, { messages: ['m1'], systemPrompt: prompt });
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, FINISHED);
      const before = await shared.store.loadRecent(chatId, ownerId, 10);
      const summary = await shared.store.getChat(chatId, ownerId);

      const refused = newTurn(chatId, ownerId, self, { messages: ['m2'] });
      expect(await shared.store.openTurn(opening(refused, { maxPromptBytes: 15 }))).toEqual({ stored: false, before });
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual(before);
      expect(await shared.store.getChat(chatId, ownerId)).toEqual(summary);
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(2);

      // A chat with no prompt is bound by the default; a new chat too.
      const fresh = newTurn(randomUUID(), ownerId, self);
      expect(await shared.store.openTurn(opening(fresh, { defaultPrompt: 'x'.repeat(10), maxPromptBytes: 9 }))).toEqual({ stored: false, before: null });
      expect(await shared.store.getChat(fresh.chatId, ownerId)).toBeNull();
      // A negative bound refuses even an empty prompt.
      expect((await shared.store.openTurn(opening(fresh, { defaultPrompt: '', maxPromptBytes: -1 }))).stored).toBe(false);

      const allowed = newTurn(chatId, ownerId, self, { messages: ['m2'] });
      expect((await shared.store.openTurn(opening(allowed, { maxPromptBytes: 16 }))).stored).toBe(true);
      // The turn's own prompt is the one in force, whatever the chat's.
      const own = newTurn(chatId, ownerId, self, { messages: ['m3'], systemPrompt: 'Short.' });
      await shared.store.finishReply(allowed.reply.id, FINISHED);
      expect((await shared.store.openTurn(opening(own, { maxPromptBytes: 6 }))).stored).toBe(true);
      expect((await shared.store.loadRecent(chatId, ownerId, 10))?.systemPrompt).toBe('Short.');
    });

    test('another instance streaming on the chat: generation_in_progress, nothing written; over the bound, the bound answers first', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      await shared.store.beginTurn(newTurn(chatId, ownerId, instance('a'), { systemPrompt: 'A long enough prompt.' }));
      const before = await shared.store.loadRecent(chatId, ownerId, 10);
      const [, other] = await shared.instances(2);
      const blocked = newTurn(chatId, ownerId, instance('b'));
      await expectAppError(other!.store.openTurn(opening(blocked)), 'generation_in_progress');
      expect(await other!.store.openTurn(opening(blocked, { maxPromptBytes: 3 }))).toEqual({ stored: false, before });
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual(before);
    });
  });

  describe('order', () => {
    /** Two turns: three messages and a finished reply, then two messages and an open reply. */
    async function twoTurns(ownerId: string, chatId: string) {
      const first = newTurn(chatId, ownerId, instance('a'), { messages: ['m1', { role: 'assistant', content: 'm2' }, 'm3'] });
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, { ...FINISHED, content: 'r1' });
      const second = newTurn(chatId, ownerId, instance('a'), { messages: ['m4', 'm5'] });
      await shared.store.beginTurn(second);
      return ['m1', 'm2', 'm3', 'r1', 'm4', 'm5', ''];
    }

    async function readAll(ownerId: string, chatId: string) {
      const recent = await shared.store.loadRecent(chatId, ownerId, 100);
      const listed = await shared.store.listMessages(chatId, ownerId, { limit: 100 });
      return { recent: recent?.messages.map((message) => message.content), listed: listed?.messages.map((message) => message.content) };
    }

    test('messages of one turn and across turns come back in insertion order, also when their timestamps are forced equal', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const order = await twoTurns(ownerId, chatId);
      expect(await readAll(ownerId, chatId)).toEqual({ recent: order, listed: order });

      // Every createdAt (and updatedAt) the same instant: the order must not come from them.
      const [newest] = await shared.rows.all(`SELECT "id" FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2 AND "content" = 'm5'`, [ownerId, chatId]);
      const changed = await shared.rows.run(
        `UPDATE "Message" SET "createdAt" = (SELECT "createdAt" FROM "Message" WHERE "id" = $1),
           "updatedAt" = (SELECT "updatedAt" FROM "Message" WHERE "id" = $1)
         WHERE "ownerId" = $2 AND "chatId" = $3`,
        [newest?.id, ownerId, chatId],
      );
      expect(changed).toBe(7);
      const listed = await shared.store.listMessages(chatId, ownerId, { limit: 100 });
      expect(new Set(listed?.messages.map((message) => message.createdAt.getTime())).size).toBe(1);
      expect(await readAll(ownerId, chatId)).toEqual({ recent: order, listed: order });
      expect((await shared.store.loadRecent(chatId, ownerId, 3))?.messages.map((message) => message.content)).toEqual(['m4', 'm5', '']);

      // And pages cut through the tie where they should.
      const page = await shared.store.listMessages(chatId, ownerId, { limit: 3 });
      expect(page?.messages.map((message) => message.content)).toEqual(['m4', 'm5', '']);
      const previous = await shared.store.listMessages(chatId, ownerId, { limit: 3, before: page?.messages[0]?.id });
      expect(previous?.messages.map((message) => message.content)).toEqual(['m2', 'm3', 'r1']);
    });

    test('loadRecent gives the newest `limit` messages, oldest first, and the count of all', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      await twoTurns(ownerId, chatId);
      const recent = await shared.store.loadRecent(chatId, ownerId, 2);
      expect(recent).toEqual({ systemPrompt: null, messageCount: 7, messages: [storedMessage('m5'), expect.objectContaining({ content: '', status: 'streaming' })] });
      expect((await shared.store.getChat(chatId, ownerId))?.messageCount).toBe(7);
    });

    test('listMessages pages backwards with `before` and says whether older messages remain', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      await twoTurns(ownerId, chatId);
      const pages: Array<[string[], boolean]> = [];
      let before: string | undefined;
      for (;;) {
        const page = await shared.store.listMessages(chatId, ownerId, { limit: 3, before });
        if (!page) throw new Error('the chat is unknown');
        pages.push([page.messages.map((message) => message.content), page.hasMore]);
        if (!page.hasMore) break;
        before = page.messages[0]?.id;
      }
      expect(pages).toEqual([
        [['m4', 'm5', ''], true],
        [['m2', 'm3', 'r1'], true],
        [['m1'], false],
      ]);

      const all = (await shared.store.listMessages(chatId, ownerId, { limit: 7 }))!;
      expect(all.hasMore).toBe(false);
      const [m1, m2] = all.messages;
      // A page that ends exactly at the oldest message has nothing more.
      expect(await shared.store.listMessages(chatId, ownerId, { limit: 1, before: m2?.id })).toEqual({ messages: [m1], hasMore: false });
      expect(await shared.store.listMessages(chatId, ownerId, { limit: 5, before: m1?.id })).toEqual({ messages: [], hasMore: false });
    });

    test('listMessages: an unknown `before` is invalid_request, as is a message of another chat; an unknown chat is null', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      await twoTurns(ownerId, chatId);
      const otherChat = randomUUID();
      await shared.store.beginTurn(newTurn(otherChat, ownerId, instance('a')));
      const otherMessage = (await shared.store.loadRecent(otherChat, ownerId, 1))?.messages[0]?.id;

      await expectAppError(shared.store.listMessages(chatId, ownerId, { limit: 3, before: randomUUID() }), 'invalid_request');
      await expectAppError(shared.store.listMessages(chatId, ownerId, { limit: 3, before: otherMessage }), 'invalid_request');
      expect(await shared.store.listMessages(randomUUID(), ownerId, { limit: 3 })).toBeNull();
    });

    test('listChats pages by newest activity; ties on updatedAt go by chatId descending, also across a page boundary', async () => {
      const ownerId = owner();
      const ids = Array.from({ length: 5 }, () => randomUUID()).sort();
      for (const chatId of ids) await shared.store.beginTurn(newTurn(chatId, ownerId, instance('a'), { title: `Chat ${chatId}` }));

      const [sample] = await shared.rows.all(`SELECT "updatedAt" FROM "Chat" WHERE "ownerId" = $1 AND "id" = $2`, [ownerId, ids[0]]);
      const base = Date.parse('2030-01-01T00:00:00.000Z');
      const times: Array<[string, number]> = [
        [ids[2]!, base + 3_000],
        [ids[0]!, base + 2_000],
        [ids[3]!, base + 2_000],
        [ids[4]!, base + 2_000],
        [ids[1]!, base + 1_000],
      ];
      for (const [chatId, time] of times) {
        await shared.rows.run(`UPDATE "Chat" SET "updatedAt" = $1 WHERE "ownerId" = $2 AND "id" = $3`, [
          timestampLike(sample?.updatedAt, new Date(time)),
          ownerId,
          chatId,
        ]);
      }
      const expected = [ids[2], ids[4], ids[3], ids[0], ids[1]];

      const whole = await shared.store.listChats(ownerId, { limit: 5 });
      expect(whole.hasMore).toBe(false);
      expect((await shared.store.listChats(ownerId, { limit: 4 })).hasMore).toBe(true);
      expect(whole.chats.map((chat) => [chat.chatId, chat.updatedAt.toISOString()])).toEqual(
        expected.map((chatId) => [chatId, new Date(times.find(([id]) => id === chatId)![1]).toISOString()]),
      );
      expect(whole.chats[0]).toEqual<ChatSummary>({
        chatId: ids[2]!,
        title: `Chat ${ids[2]}`,
        systemPrompt: null,
        createdAt: expect.any(Date),
        updatedAt: new Date(base + 3_000),
        messageCount: 2,
        lastReplyStatus: 'streaming',
      });

      const pages: Array<[Array<string | undefined>, boolean]> = [];
      let cursor: { updatedAt: Date; chatId: string } | undefined;
      for (;;) {
        const page = await shared.store.listChats(ownerId, { limit: 2, cursor });
        pages.push([page.chats.map((chat) => chat.chatId), page.hasMore]);
        const last = page.chats.at(-1);
        if (!page.hasMore || !last) break;
        cursor = { updatedAt: last.updatedAt, chatId: last.chatId };
      }
      expect(pages).toEqual([
        [[ids[2], ids[4]], true],
        [[ids[3], ids[0]], true],
        [[ids[1]], false],
      ]);
      expect(await shared.store.listChats(owner(), { limit: 10 })).toEqual({ chats: [], hasMore: false });

      // A cursor is a position, not a chat: it still works once its chat is deleted.
      const firstPage = await shared.store.listChats(ownerId, { limit: 2 });
      const last = firstPage.chats.at(-1)!;
      expect(await shared.store.deleteChat(last.chatId, ownerId)).toBe(true);
      const after = await shared.store.listChats(ownerId, { limit: 2, cursor: { updatedAt: last.updatedAt, chatId: last.chatId } });
      expect([after.chats.map((chat) => chat.chatId), after.hasMore]).toEqual([[ids[3], ids[0]], true]);
    });

    test('listChats: a new turn is activity, and moves its chat first', async () => {
      const ownerId = owner();
      const [older, newer] = [randomUUID(), randomUUID()];
      const first = newTurn(older, ownerId, instance('a'));
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, FINISHED);
      await sleep(10);
      await shared.store.beginTurn(newTurn(newer, ownerId, instance('a')));
      expect((await shared.store.listChats(ownerId, { limit: 10 })).chats.map((chat) => chat.chatId)).toEqual([newer, older]);
      await sleep(10);
      await shared.store.beginTurn(newTurn(older, ownerId, instance('a')));
      const { chats } = await shared.store.listChats(ownerId, { limit: 10 });
      expect(chats.map((chat) => chat.chatId)).toEqual([older, newer]);
      expect(chats[0]!.updatedAt.getTime()).toBeGreaterThan(chats[1]!.updatedAt.getTime());
      expect(chats[0]!.createdAt.getTime()).toBeLessThan(chats[1]!.createdAt.getTime());
    });
  });

  describe('owners', () => {
    test('the same chat id under two owners is two chats; neither owner can read, change or delete the other one', async () => {
      const [alice, bob] = [owner(), owner()];
      const chatId = randomUUID();
      const alices = newTurn(chatId, alice, instance('a'), { messages: ['From Alice'], title: 'Alice' });
      await shared.store.beginTurn(alices);

      expect(await shared.store.loadRecent(chatId, bob, 10)).toBeNull();
      expect(await shared.store.listMessages(chatId, bob, { limit: 10 })).toBeNull();
      expect(await shared.store.getChat(chatId, bob)).toBeNull();
      expect(await shared.store.listChats(bob, { limit: 10 })).toEqual({ chats: [], hasMore: false });
      expect(await shared.store.updateChat(chatId, bob, { title: 'Mine now', systemPrompt: 'Mine' })).toBeNull();
      await shared.store.setGeneratedTitle(chatId, bob, 'Mine now');
      expect(await shared.store.deleteChat(chatId, bob)).toBe(false);
      expect(await shared.store.getChat(chatId, alice)).toMatchObject({ chatId, title: 'Alice', systemPrompt: null, messageCount: 2 });

      // Bob's chat of the same id is another chat: Alice's reply streaming does not hold it up.
      const bobs = newTurn(chatId, bob, instance('b'), { messages: ['From Bob', 'Again from Bob'], title: 'Bob', systemPrompt: 'Bob only' });
      await shared.store.beginTurn(bobs);
      expect(await shared.store.loadRecent(chatId, alice, 10)).toEqual({
        systemPrompt: null,
        messageCount: 2,
        messages: [storedMessage('From Alice'), storedReply(alices.reply.id, { streaming: '' })],
      });
      expect(await shared.store.loadRecent(chatId, bob, 10)).toEqual({
        systemPrompt: 'Bob only',
        messageCount: 3,
        messages: [storedMessage('From Bob'), storedMessage('Again from Bob'), storedReply(bobs.reply.id, { streaming: '' })],
      });
      expect((await shared.store.listChats(bob, { limit: 10 })).chats).toEqual([
        expect.objectContaining({ chatId, title: 'Bob', systemPrompt: 'Bob only', messageCount: 3 }),
      ]);

      expect(await shared.store.deleteChat(chatId, alice)).toBe(true);
      expect(await shared.store.getChat(chatId, alice)).toBeNull();
      expect(await shared.store.listMessages(chatId, bob, { limit: 10 })).toEqual({
        messages: [storedMessage('From Bob'), storedMessage('Again from Bob'), storedReply(bobs.reply.id, { streaming: '' })],
        hasMore: false,
      });
      await shared.store.purgeDeletedChats();
      expect(await messageRows(shared.rows, bob, chatId)).toBe(3);
      expect((await shared.store.loadRecent(chatId, bob, 10))?.messageCount).toBe(3);
    });
  });

  describe('deleting', () => {
    async function chatWithTwoTurns(ownerId: string, chatId: string) {
      const first = newTurn(chatId, ownerId, instance('a'), { messages: ['Old 1', 'Old 2'], title: 'Old chat', systemPrompt: 'Old prompt' });
      await shared.store.beginTurn(first);
      await shared.store.finishReply(first.reply.id, FINISHED);
      const second = newTurn(chatId, ownerId, instance('a'), { messages: ['Old 3'] });
      await shared.store.beginTurn(second);
      return second.reply.id;
    }

    test('deleteChat is true then false; the chat is gone for every read at once, and its rows after purgeDeletedChats', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const kept = randomUUID();
      const openReply = await chatWithTwoTurns(ownerId, chatId);
      await shared.store.beginTurn(newTurn(kept, ownerId, instance('a')));

      expect(await shared.store.deleteChat(chatId, ownerId)).toBe(true);
      expect(await shared.store.deleteChat(chatId, ownerId)).toBe(false);
      expect(await shared.store.getChat(chatId, ownerId)).toBeNull();
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toBeNull();
      expect(await shared.store.listMessages(chatId, ownerId, { limit: 10 })).toBeNull();
      expect(await shared.store.updateChat(chatId, ownerId, { title: 'Too late' })).toBeNull();
      expect((await shared.store.listChats(ownerId, { limit: 10 })).chats.map((chat) => chat.chatId)).toEqual([kept]);

      await shared.store.purgeDeletedChats();
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(0);
      expect(await count(shared.rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "ChatPurge"`)).toBe(0);
      expect(await shared.store.purgeDeletedChats()).toBe(0);
      // The reply's row is gone: its end has nowhere to go.
      expect(await shared.store.finishReply(openReply, FINISHED)).toBe(false);
      expect(await messageRows(shared.rows, ownerId, kept)).toBe(2);
    });

    test('a chat created again with the same id right after deletion shows none of the old messages, and keeps its own through the purge', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      await chatWithTwoTurns(ownerId, chatId);
      expect(await shared.store.deleteChat(chatId, ownerId)).toBe(true);
      const again = newTurn(chatId, ownerId, instance('b'), { messages: ['New 1'], title: 'New chat' });
      await shared.store.beginTurn(again);

      const expectNewChatOnly = async () => {
        const messages = [storedMessage('New 1'), storedReply(again.reply.id, { streaming: '' })];
        expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual({ systemPrompt: null, messageCount: 2, messages });
        expect(await shared.store.listMessages(chatId, ownerId, { limit: 10 })).toEqual({ messages, hasMore: false });
        expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({
          title: 'New chat',
          systemPrompt: null,
          messageCount: 2,
          lastReplyStatus: 'streaming',
        });
      };
      await expectNewChatOnly();
      await shared.store.purgeDeletedChats();
      await expectNewChatOnly();
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(2);
      expect(await shared.store.finishReply(again.reply.id, FINISHED)).toBe(true);
      expect((await shared.store.getChat(chatId, ownerId))?.lastReplyStatus).toBe('completed');
    });

    /** A chat of 3,000 messages: one turn through the store, the rest copied from its reply by SQL. */
    async function bigChat(store: ChatStore, rows: Rows, ownerId: string, chatId: string) {
      const turn = newTurn(chatId, ownerId, instance('a'));
      await store.beginTurn(turn);
      await store.finishReply(turn.reply.id, FINISHED);
      const inserted = await rows.run(
        `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "usageEstimated", "createdAt", "updatedAt")
         WITH RECURSIVE "n"("i") AS (SELECT 1 UNION ALL SELECT "i" + 1 FROM "n" WHERE "i" < 2998)
         SELECT CAST($1 AS TEXT) || CAST("n"."i" AS TEXT), "m"."ownerId", "m"."chatId", 'user', 'A bulk message', 'completed',
           "m"."usageEstimated", "m"."createdAt", "m"."updatedAt"
         FROM "n" CROSS JOIN "Message" "m" WHERE "m"."id" = $2`,
        [`bulk-${randomUUID()}-`, turn.reply.id],
      );
      expect(inserted).toBe(2_998);
      expect(await messageRows(rows, ownerId, chatId)).toBe(3_000);
    }

    test('a chat of 3,000 messages is gone at once and purged completely, also by two instances purging together', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      await bigChat(shared.store, shared.rows, ownerId, chatId);

      expect(await shared.store.deleteChat(chatId, ownerId)).toBe(true);
      expect(await shared.store.getChat(chatId, ownerId)).toBeNull();
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toBeNull();
      const [first, second] = await shared.instances(2);
      const removed = await Promise.all([first!.store.purgeDeletedChats(), second!.store.purgeDeletedChats()]);
      // Calls on one store may join the same run and report its count each.
      for (const each of removed) expect(each).toBeLessThanOrEqual(3_000);
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(0);
      expect(await count(shared.rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "ChatPurge"`)).toBe(0);
      expect(await shared.store.purgeDeletedChats()).toBe(0);
    });

    test('a purge that close stopped is finished by the next store opened on the database', async () => {
      const url = await engine.newDatabase();
      const rows = await engine.connect(url);
      const ownerId = owner();
      const chatId = randomUUID();
      let opened = await open(url);
      try {
        await bigChat(opened.store, rows, ownerId, chatId);
        expect(await opened.store.deleteChat(chatId, ownerId)).toBe(true);
        await opened.store.close();
        opened = await open(url);
        expect(await opened.store.getChat(chatId, ownerId)).toBeNull();
        // Nothing purges on this store but this call, so it reports exactly what was left.
        const left = await messageRows(rows, ownerId, chatId);
        expect(await opened.store.purgeDeletedChats()).toBe(left);
        expect(await messageRows(rows, ownerId, chatId)).toBe(0);
        expect(await count(rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "ChatPurge"`)).toBe(0);
      } finally {
        await opened.store.close();
        await rows.close();
      }
    });
  });

  describe('one reply streams per chat', () => {
    const racing: Array<[string, boolean]> = [
      ['a new chat', false],
      ['a chat whose last reply finished', true],
    ];
    test.each(racing)('of two turns racing on %s from two instances, exactly one is stored; the other is generation_in_progress', async (_name, existing) => {
      const [first, second] = await shared.instances(2);
      const ownerId = owner();
      const chatId = randomUUID();
      let before = 0;
      if (existing) {
        const earlier = newTurn(chatId, ownerId, instance('a'), { messages: ['Earlier'] });
        await first!.store.beginTurn(earlier);
        await first!.store.finishReply(earlier.reply.id, FINISHED);
        before = 2;
      }
      const turns = [
        newTurn(chatId, ownerId, instance('x'), { messages: ['From X'] }),
        newTurn(chatId, ownerId, instance('y'), { messages: ['From Y'] }),
      ];
      const results = await Promise.allSettled([first!.store.beginTurn(turns[0]!), second!.store.beginTurn(turns[1]!)]);

      expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
      const winner = results[0]?.status === 'fulfilled' ? 0 : 1;
      const loser = 1 - winner;
      const rejected = results[loser] as PromiseRejectedResult;
      expect(rejected.reason).toBeInstanceOf(AppError);
      expect((rejected.reason as AppError).code).toBe('generation_in_progress');

      // The loser wrote nothing: one more message and one more reply, the winner's.
      const streaming = await shared.rows.all(
        `SELECT "id", "instanceId" FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2 AND "status" = 'streaming'`,
        [ownerId, chatId],
      );
      expect(streaming).toEqual([{ id: turns[winner]!.reply.id, instanceId: turns[winner]!.reply.instanceId }]);
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(before + 2);
      expect(await shared.rows.all(`SELECT "id" FROM "Message" WHERE "id" = $1`, [turns[loser]!.reply.id])).toEqual([]);
      const recent = await shared.store.loadRecent(chatId, ownerId, 10);
      expect(recent?.messageCount).toBe(before + 2);
      expect(recent?.messages.slice(-2)).toEqual([
        storedMessage(winner === 0 ? 'From X' : 'From Y'),
        storedReply(turns[winner]!.reply.id, { streaming: '' }),
      ]);

      // Once the reply has finished, the other instance's turn goes through.
      expect(await shared.store.finishReply(turns[winner]!.reply.id, FINISHED)).toBe(true);
      const retry = newTurn(chatId, ownerId, turns[loser]!.reply.instanceId, { messages: ['Retried'] });
      await [first, second][loser]!.store.beginTurn(retry);
      expect(await statusOf(shared.rows, retry.reply.id)).toBe('streaming');
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ messageCount: before + 4, lastReplyStatus: 'streaming' });
    });

    test('the chat summary follows its newest reply only: a late end or a sweep of an older reply leaves it', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const self = instance('a');
      const left = newTurn(chatId, ownerId, self);
      await shared.store.beginTurn(left);
      const next = newTurn(chatId, ownerId, self);
      await shared.store.beginTurn(next);
      expect(await statusOf(shared.rows, left.reply.id)).toBe('interrupted');

      // The older reply's end arrives late: it is recorded, the chat still streams its newest.
      expect(await shared.store.finishReply(left.reply.id, FINISHED)).toBe(true);
      expect(await statusOf(shared.rows, left.reply.id)).toBe('completed');
      expect(await shared.store.getChat(chatId, ownerId)).toMatchObject({ messageCount: 4, lastReplyStatus: 'streaming' });
      const [, other] = await shared.instances(2);
      await expectAppError(other!.store.beginTurn(newTurn(chatId, ownerId, instance('b'))), 'generation_in_progress');

      expect(await shared.store.finishReply(next.reply.id, { ...FINISHED, status: 'cancelled' })).toBe(true);
      expect((await shared.store.getChat(chatId, ownerId))?.lastReplyStatus).toBe('cancelled');
    });

    test('a sweep of a reply that is not its chat\'s newest leaves the chat summary alone', async () => {
      const database = await freshDatabase();
      const ownerId = owner();
      const chatId = randomUUID();
      const first = newTurn(chatId, ownerId, 'A');
      await database.store.beginTurn(first);
      await database.store.finishReply(first.reply.id, FINISHED);
      const second = newTurn(chatId, ownerId, 'A');
      await database.store.beginTurn(second);
      await database.store.finishReply(second.reply.id, FINISHED);
      // An older reply left streaming by no instance (a row from before instances were recorded).
      await database.rows.run(`UPDATE "Message" SET "status" = 'streaming', "instanceId" = NULL WHERE "id" = $1`, [first.reply.id]);

      expect(await database.store.interruptAbandonedReplies({ instanceId: 'A', includeOwn: true })).toBe(1);
      expect(await statusOf(database.rows, first.reply.id)).toBe('interrupted');
      expect(await database.store.getChat(chatId, ownerId)).toMatchObject({ messageCount: 4, lastReplyStatus: 'completed' });
    });

    test('turns racing on different chats all go through', async () => {
      const [first, second] = await shared.instances(2);
      const ownerId = owner();
      const turns = Array.from({ length: 10 }, (_, index) => newTurn(randomUUID(), ownerId, index % 2 === 0 ? 'even' : 'odd'));
      const results = await Promise.allSettled(turns.map((turn, index) => (index % 2 === 0 ? first! : second!).store.beginTurn(turn)));
      expect(results.map((result) => result.status)).toEqual(turns.map(() => 'fulfilled'));
      expect((await shared.store.listChats(ownerId, { limit: 20 })).chats).toHaveLength(10);
    });

    test('a turn racing the deletion of its chat leaves either no chat or a new one with only its own messages', async () => {
      const [first, second] = await shared.instances(2);
      const ownerId = owner();
      const outcomes = new Set<string>();
      for (let round = 0; round < 8; round += 1) {
        const chatId = randomUUID();
        const old = newTurn(chatId, ownerId, instance('a'), { messages: ['Old'] });
        await first!.store.beginTurn(old);
        await first!.store.finishReply(old.reply.id, FINISHED);
        const next = newTurn(chatId, ownerId, instance('b'), { messages: ['New'] });
        const [deleted, begun] = await Promise.allSettled([first!.store.deleteChat(chatId, ownerId), second!.store.beginTurn(next)]);
        expect(deleted).toEqual({ status: 'fulfilled', value: true });
        expect(begun.status).toBe('fulfilled');
        await shared.store.purgeDeletedChats();

        const recent = await shared.store.loadRecent(chatId, ownerId, 10);
        if (recent === null) {
          outcomes.add('turn, then delete');
          expect(await messageRows(shared.rows, ownerId, chatId)).toBe(0);
        } else {
          outcomes.add('delete, then turn');
          expect(recent).toEqual({ systemPrompt: null, messageCount: 2, messages: [storedMessage('New'), storedReply(next.reply.id, { streaming: '' })] });
          expect(await messageRows(shared.rows, ownerId, chatId)).toBe(2);
        }
      }
      expect(outcomes.size).toBeGreaterThan(0);
    });

    test('a turn over a reply still streaming from the same instance (a previous run) goes on and marks that reply interrupted', async () => {
      const ownerId = owner();
      const chatId = randomUUID();
      const self = instance('a');
      const left = newTurn(chatId, ownerId, self, { messages: ['Before the crash'] });
      await shared.store.beginTurn(left);
      await shared.store.saveProgress(left.reply.id, 'Half an ans');

      const next = newTurn(chatId, ownerId, self, { messages: ['After the restart'] });
      await shared.store.beginTurn(next);
      expect(await shared.store.loadRecent(chatId, ownerId, 10)).toEqual({
        systemPrompt: null,
        messageCount: 4,
        messages: [
          storedMessage('Before the crash'),
          { ...storedReply(left.reply.id, { streaming: 'Half an ans' }), status: 'interrupted' },
          storedMessage('After the restart'),
          storedReply(next.reply.id, { streaming: '' }),
        ],
      });
      expect((await shared.store.getChat(chatId, ownerId))?.lastReplyStatus).toBe('streaming');

      // The new reply is streaming and this instance's: another instance still has to wait.
      const [, other] = await shared.instances(2);
      await expectAppError(other!.store.beginTurn(newTurn(chatId, ownerId, instance('b'))), 'generation_in_progress');
      expect(await messageRows(shared.rows, ownerId, chatId)).toBe(4);
    });
  });

  describe('sweeping abandoned replies', () => {
    const lapses: Array<[string, (store: ChatStore, instanceId: string) => Promise<void>]> = [
      [
        'its lease lapses',
        async (store, instanceId) => {
          await store.renewLease(instanceId, 1);
          await sleep(50);
        },
      ],
      ['it releases its lease', (store, instanceId) => store.releaseLease(instanceId)],
    ];
    test.each(lapses)(
      'replies of instances without a current lease (and of none) are interrupted, never those of a current lease, own ones only with includeOwn; B is swept once %s',
      async (_name, lapse) => {
        const database = await freshDatabase();
        const [a, b] = await database.instances(2);
        const ownerId = owner();
        const [chatA, chatB, chatNone, chatUnleased, chatA2] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];

        // A's reply from its previous run; B alive with a reply of its own.
        const fromA = newTurn(chatA, ownerId, 'A');
        await a!.store.beginTurn(fromA);
        await b!.store.renewLease('B', 60_000);
        const fromB = newTurn(chatB, ownerId, 'B');
        await b!.store.beginTurn(fromB);
        // A row from before instances were recorded, and one of an instance that never held a lease.
        const fromNone = newTurn(chatNone, ownerId, 'legacy');
        await a!.store.beginTurn(fromNone);
        expect(await database.rows.run(`UPDATE "Message" SET "instanceId" = NULL WHERE "id" = $1`, [fromNone.reply.id])).toBe(1);
        const fromUnleased = newTurn(chatUnleased, ownerId, 'never-leased');
        await a!.store.beginTurn(fromUnleased);

        expect(await a!.store.interruptAbandonedReplies({ instanceId: 'A', includeOwn: true })).toBe(3);
        const statuses = async () => {
          const found: Record<string, string | undefined> = {};
          for (const turn of [fromA, fromB, fromNone, fromUnleased]) found[turn.reply.instanceId] = await statusOf(database.rows, turn.reply.id);
          return found;
        };
        expect(await statuses()).toEqual({ A: 'interrupted', B: 'streaming', legacy: 'interrupted', 'never-leased': 'interrupted' });
        const lastStatus = async (chatId: string) => (await a!.store.getChat(chatId, ownerId))?.lastReplyStatus;
        expect([await lastStatus(chatA), await lastStatus(chatB), await lastStatus(chatNone), await lastStatus(chatUnleased)]).toEqual([
          'interrupted',
          'streaming',
          'interrupted',
          'interrupted',
        ]);
        expect(await a!.store.loadRecent(chatA, ownerId, 1)).toMatchObject({ messages: [{ id: fromA.reply.id, status: 'interrupted' }] });

        // A, now running, opens a reply; it holds no lease, yet its own sweep never touches it.
        const fromA2 = newTurn(chatA2, ownerId, 'A');
        await a!.store.beginTurn(fromA2);
        expect(await a!.store.interruptAbandonedReplies({ instanceId: 'A', includeOwn: false })).toBe(0);

        await lapse(b!.store, 'B');
        expect(await a!.store.interruptAbandonedReplies({ instanceId: 'A', includeOwn: false })).toBe(1);
        expect(await statusOf(database.rows, fromB.reply.id)).toBe('interrupted');
        expect(await statusOf(database.rows, fromA2.reply.id)).toBe('streaming');
        expect(await lastStatus(chatB)).toBe('interrupted');
        expect(await lastStatus(chatA2)).toBe('streaming');

        // With A's lease current, another instance's sweep leaves A's reply alone.
        await a!.store.renewLease('A', 60_000);
        expect(await b!.store.interruptAbandonedReplies({ instanceId: 'C', includeOwn: true })).toBe(0);
        expect(await statusOf(database.rows, fromA2.reply.id)).toBe('streaming');
      },
    );

    test('a lease renewed again is current again', async () => {
      const database = await freshDatabase();
      const ownerId = owner();
      await database.store.renewLease('B', 1);
      await sleep(50);
      await database.store.renewLease('B', 60_000);
      const fromB = newTurn(randomUUID(), ownerId, 'B');
      await database.store.beginTurn(fromB);
      expect(await database.store.interruptAbandonedReplies({ instanceId: 'A', includeOwn: true })).toBe(0);
      expect(await statusOf(database.rows, fromB.reply.id)).toBe('streaming');
      await database.store.releaseLease('B');
      expect(await database.store.interruptAbandonedReplies({ instanceId: 'A', includeOwn: true })).toBe(1);
    });
  });

  describe('API keys', () => {
    test('insertKey, findKeysByPrefix, listKeys and revokeKey (null for an unknown key)', async () => {
      const { keys } = await freshDatabase();
      const before = Date.now();
      const app = keyFields('app');
      const twin = keyFields('twin', app.prefix);
      const other = keyFields('other');
      const inserted: ApiKeyRecord[] = [];
      for (const fields of [app, twin, other]) {
        const record = await keys.insertKey(fields);
        expect(record).toEqual({ ...fields, createdAt: expect.any(Date), revokedAt: null });
        inserted.push(record);
      }
      for (const record of inserted) {
        expect(record.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1_000);
        expect(record.createdAt.getTime()).toBeLessThanOrEqual(Date.now() + 1_000);
      }

      expect(byId(await keys.findKeysByPrefix(app.prefix))).toEqual(byId(inserted.slice(0, 2)));
      expect(await keys.findKeysByPrefix('lss_nothing')).toEqual([]);
      // The prefix is matched whole: not as the start of another one, nor with `_` or `%` as wildcards.
      expect(await keys.findKeysByPrefix(app.prefix.slice(0, -1))).toEqual([]);
      expect(await keys.findKeysByPrefix(`${app.prefix.slice(0, -2)}_`)).toEqual([]);
      expect(await keys.findKeysByPrefix('lss_%')).toEqual([]);
      expect(byId(await keys.listKeys())).toEqual(byId(inserted));

      const revoked = await keys.revokeKey(app.id);
      expect(revoked).toEqual({ ...inserted[0], revokedAt: expect.any(Date) });
      expect(revoked!.revokedAt!.getTime()).toBeGreaterThanOrEqual(inserted[0]!.createdAt.getTime());
      expect(byId(await keys.findKeysByPrefix(app.prefix))).toEqual(byId([revoked!, inserted[1]!]));
      expect(await keys.revokeKey(randomUUID())).toBeNull();
      expect(byId(await keys.listKeys())).toEqual(byId([revoked!, inserted[1]!, inserted[2]!]));
    });

    test('insertFirstKey inserts on an empty database, then is undefined', async () => {
      const { keys, rows } = await freshDatabase();
      const first = keyFields('default');
      expect(await keys.insertFirstKey(first)).toEqual({ ...first, createdAt: expect.any(Date), revokedAt: null });
      expect(await keys.insertFirstKey(keyFields('default'))).toBeUndefined();
      expect(await rows.all(`SELECT "id" FROM "ApiKey"`)).toEqual([{ id: first.id }]);
    });

    test('insertFirstKey is undefined once any key exists, even a revoked one', async () => {
      const { keys } = await freshDatabase();
      const made = await keys.insertKey(keyFields('made by hand'));
      await keys.revokeKey(made.id);
      expect(await keys.insertFirstKey(keyFields('default'))).toBeUndefined();
      expect((await keys.listKeys()).map((key) => key.id)).toEqual([made.id]);
    });

    test('insertFirstKey from five instances at once inserts exactly one key', async () => {
      const database = await freshDatabase();
      const stores = await database.instances(5);
      const results = await Promise.all(stores.map((each, index) => each.keys.insertFirstKey(keyFields(`default-${index}`))));
      const inserted = results.filter((result) => result !== undefined);
      expect(inserted).toHaveLength(1);
      expect(await database.keys.listKeys()).toEqual(inserted);
      expect(await count(database.rows, `SELECT CAST(COUNT(*) AS INTEGER) AS "n" FROM "ApiKey"`)).toBe(1);
    });
  });
}

// --- The engines ----------------------------------------------------------------------------------

describe('SQLite store', () => {
  let folder: string | undefined;
  beforeAll(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'store-conformance-'));
  });
  afterAll(() => {
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  storeConformance({
    name: 'sqlite',
    storePerInstance: false,
    async newDatabase() {
      if (!folder) throw new Error('the folder is made in beforeAll');
      return `file:${path.join(folder, `${randomUUID()}.db`)}`;
    },
    async connect(url) {
      // A wait of its own for the store's write lock (a purge may be running); the store never holds it across an await.
      const database = new Database(url.replace(/^file:/, ''), { timeout: 5_000 });
      const named = (sql: string) => sql.replace(/\$(\d+)/g, '@p$1');
      const bind = (parameters: unknown[]) => Object.fromEntries(parameters.map((value, index) => [`p${index + 1}`, value]));
      return {
        all: async (sql, parameters = []) => {
          const statement = database.prepare(named(sql));
          return (parameters.length > 0 ? statement.all(bind(parameters)) : statement.all()) as Row[];
        },
        run: async (sql, parameters = []) => {
          const statement = database.prepare(named(sql));
          return (parameters.length > 0 ? statement.run(bind(parameters)) : statement.run()).changes;
        },
        close: async () => {
          database.close();
        },
      };
    },
  });
});

describePostgres('PostgreSQL store', (databases) => {
  // Nested, so that its stores close before the databases are dropped.
  describe('on a database of its own', () => {
    let first = true;
    storeConformance({
      name: 'postgresql',
      storePerInstance: true,
      async newDatabase() {
        if (first) {
          first = false;
          return databases.url;
        }
        return databases.create();
      },
      async connect(url) {
        const client = new Client({ connectionString: url });
        client.on('error', () => undefined);
        await client.connect();
        return {
          all: async (sql, parameters = []) => (await client.query(sql, parameters)).rows as Row[],
          run: async (sql, parameters = []) => (await client.query(sql, parameters)).rowCount ?? 0,
          close: () => client.end(),
        };
      },
    });
  });
});
