import type Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../auth/api-keys';
import type { FinishedReply, FinishReason, MessageStatus, NewTurn, Role, StoredMessage } from '../chat/ports';
import { finishedReplyColumns, newMessageRows } from './message-columns';

const MESSAGE_COLUMNS = `"id", "role", "content", "status", "finishReason", "createdAt", "tokenCount", "promptTokens",
  "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs", "systemPromptHash"`;

interface MessageRow extends Omit<StoredMessage, 'role' | 'status' | 'finishReason' | 'createdAt' | 'usageEstimated'> {
  role: string;
  status: string;
  finishReason: string | null;
  createdAt: string;
  usageEstimated: number;
}

interface KeyRow extends Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'> {
  createdAt: string;
  revokedAt: string | null;
}

/**
 * The statements every turn runs, prepared once on a connection of their own.
 *
 * Through Prisma a turn cost about 2.3 ms of CPU (its SQLite adapter prepares each statement
 * anew on every call); these cost tens of microseconds, which is what lets hundreds of streams
 * start at once. They write exactly the rows Prisma writes: timestamps as Prisma's ISO text
 * (`…+00:00`, so that ordering by text stays right), booleans as 0/1, `updatedAt` bumped as
 * `@updatedAt` would.
 *
 * Every write a serving process makes goes through here (Prisma writes only keys, before the
 * service listens or from the keys CLI), and each runs to its end synchronously. So no write lock
 * of this process is ever held across an `await`, and the Prisma connection, which only reads,
 * never makes these wait: in WAL mode readers and the writer do not block each other.
 */
export class SqliteTurnStatements {
  private readonly chatHead;
  private readonly recentMessages;
  private readonly createChat;
  private readonly createChatWithPrompt;
  private readonly titleIfNone;
  private readonly insertMessage;
  private readonly progress;
  private readonly finish;
  private readonly interruptStreaming;
  private readonly changeChat;
  private readonly generatedTitle;
  private readonly deleteMessages;
  private readonly deleteChatRow;
  private readonly keysByPrefix;
  private readonly readRecent;
  private readonly writeTurn;
  private readonly removeChat;

  constructor(private readonly database: Database.Database) {
    this.chatHead = database.prepare<[string, string], { systemPrompt: string | null; messageCount: number }>(
      `SELECT "systemPrompt",
         (SELECT COUNT(*) FROM "Message" WHERE "ownerId" = "Chat"."ownerId" AND "chatId" = "Chat"."id") AS "messageCount"
       FROM "Chat" WHERE "ownerId" = ? AND "id" = ?`,
    );
    // `seq` is the insertion order: timestamps can tie, it cannot.
    this.recentMessages = database.prepare<[string, string, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM "Message" WHERE "ownerId" = ? AND "chatId" = ? ORDER BY "seq" DESC LIMIT ?`,
    );
    const insertChat = `INSERT INTO "Chat" ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt")
      VALUES (@chatId, @ownerId, @title, 'auto', @systemPrompt, @now, @now)
      ON CONFLICT ("ownerId", "id") DO UPDATE SET "updatedAt" = excluded."updatedAt"`;
    this.createChat = database.prepare(insertChat);
    this.createChatWithPrompt = database.prepare(`${insertChat}, "systemPrompt" = excluded."systemPrompt"`);
    // Titles are set once, from the first message, unless a user already chose one.
    this.titleIfNone = database.prepare(
      `UPDATE "Chat" SET "title" = @title, "titleSource" = 'auto', "updatedAt" = @now
       WHERE "ownerId" = @ownerId AND "id" = @chatId AND "title" IS NULL`,
    );
    this.insertMessage = database.prepare(
      `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "tokenCount", "usageEstimated", "model",
         "systemPromptHash", "createdAt", "updatedAt")
       VALUES (@id, @ownerId, @chatId, @role, @content, @status, @tokenCount, 0, @model, @systemPromptHash, @now, @now)`,
    );
    this.progress = database.prepare(
      `UPDATE "Message" SET "content" = @content, "updatedAt" = @now WHERE "id" = @messageId AND "status" = 'streaming'`,
    );
    this.finish = database.prepare(
      `UPDATE "Message" SET "content" = @content, "status" = @status, "finishReason" = @finishReason,
         "tokenCount" = @tokenCount, "promptTokens" = @promptTokens, "completionTokens" = @completionTokens,
         "totalTokens" = @totalTokens, "usageEstimated" = @usageEstimated, "timeToFirstTokenMs" = @timeToFirstTokenMs,
         "durationMs" = @durationMs, "updatedAt" = @now
       WHERE "id" = @messageId`,
    );
    this.interruptStreaming = database.prepare(
      `UPDATE "Message" SET "status" = 'interrupted', "updatedAt" = ? WHERE "status" = 'streaming'`,
    );
    this.changeChat = database.prepare(
      `UPDATE "Chat" SET
         "title" = CASE WHEN @setTitle THEN @title ELSE "title" END,
         "titleSource" = CASE WHEN @setTitle THEN 'user' ELSE "titleSource" END,
         "systemPrompt" = CASE WHEN @setPrompt THEN @systemPrompt ELSE "systemPrompt" END,
         "updatedAt" = @now
       WHERE "ownerId" = @ownerId AND "id" = @chatId`,
    );
    this.generatedTitle = database.prepare(
      `UPDATE "Chat" SET "title" = @title, "titleSource" = 'model', "updatedAt" = @now
       WHERE "ownerId" = @ownerId AND "id" = @chatId AND "titleSource" IS NOT 'user'`,
    );
    this.deleteMessages = database.prepare(
      `DELETE FROM "Message" WHERE "ownerId" = @ownerId AND "chatId" = @chatId`,
    );
    this.deleteChatRow = database.prepare(`DELETE FROM "Chat" WHERE "ownerId" = @ownerId AND "id" = @chatId`);
    this.keysByPrefix = database.prepare<[string], KeyRow>(
      `SELECT "id", "name", "prefix", "hash", "createdAt", "revokedAt" FROM "ApiKey" WHERE "prefix" = ?`,
    );

    // One snapshot, so the count and the messages agree even if another process writes between them.
    this.readRecent = database.transaction((chatId: string, ownerId: string, limit: number) => {
      const head = this.chatHead.get(ownerId, chatId);
      return head ? { head, rows: this.recentMessages.all(ownerId, chatId, limit) } : undefined;
    });
    this.writeTurn = database.transaction((turn: NewTurn, now: string) => {
      const { chatId, ownerId, systemPrompt, title, reply } = turn;
      const chat = { chatId, ownerId, title, systemPrompt: systemPrompt ?? null, now };
      // The prompt changes only when a turn sends one; every turn touches updatedAt ("latest activity").
      (systemPrompt === undefined ? this.createChat : this.createChatWithPrompt).run(chat);
      this.titleIfNone.run({ chatId, ownerId, title, now });
      for (const row of newMessageRows(turn)) this.insertMessage.run({ ...row, model: null, systemPromptHash: null, now });
      this.insertMessage.run({ ...reply, chatId, ownerId, role: 'assistant', content: '', status: 'streaming', tokenCount: null, now });
    });
    this.removeChat = database.transaction((chatId: string, ownerId: string) => {
      this.deleteMessages.run({ chatId, ownerId });
      return this.deleteChatRow.run({ chatId, ownerId }).changes > 0;
    });
  }

  loadRecent(chatId: string, ownerId: string, limit: number) {
    const found = this.readRecent(chatId, ownerId, limit);
    if (!found) return null;
    const { head, rows } = found;
    return { ...head, messages: rows.reverse().map(toStoredMessage) };
  }

  beginTurn(turn: NewTurn): void {
    // IMMEDIATE takes the write lock first: a deferred transaction that read first could find the
    // lock taken after its read, and then no wait would help.
    this.writeTurn.immediate(turn, timestamp());
  }

  saveProgress(messageId: string, content: string): void {
    this.progress.run({ messageId, content, now: timestamp() });
  }

  /** @returns false when the reply's row is gone. */
  finishReply(messageId: string, reply: FinishedReply): boolean {
    const columns = finishedReplyColumns(reply);
    return this.finish.run({ ...columns, usageEstimated: columns.usageEstimated ? 1 : 0, messageId, now: timestamp() }).changes > 0;
  }

  interruptAbandonedReplies(): number {
    return this.interruptStreaming.run(timestamp()).changes;
  }

  /** @returns false when the owner has no such chat. */
  updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }): boolean {
    return (
      this.changeChat.run({
        chatId,
        ownerId,
        setTitle: changes.title === undefined ? 0 : 1,
        title: changes.title ?? null,
        setPrompt: changes.systemPrompt === undefined ? 0 : 1,
        systemPrompt: changes.systemPrompt ?? null,
        now: timestamp(),
      }).changes > 0
    );
  }

  setGeneratedTitle(chatId: string, ownerId: string, title: string): void {
    this.generatedTitle.run({ chatId, ownerId, title, now: timestamp() });
  }

  deleteChat(chatId: string, ownerId: string): boolean {
    return this.removeChat.immediate(chatId, ownerId);
  }

  findKeysByPrefix(prefix: string): ApiKeyRecord[] {
    return this.keysByPrefix.all(prefix).map((row) => ({
      ...row,
      createdAt: new Date(row.createdAt),
      revokedAt: row.revokedAt === null ? null : new Date(row.revokedAt),
    }));
  }

  close(): void {
    this.database.close();
  }
}

/** Now, as Prisma writes a DateTime to SQLite. */
function timestamp(): string {
  return new Date().toISOString().replace('Z', '+00:00');
}

function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    ...row,
    role: row.role as Role,
    status: row.status as MessageStatus,
    finishReason: row.finishReason as FinishReason | null,
    createdAt: new Date(row.createdAt),
    usageEstimated: row.usageEstimated !== 0,
  };
}
