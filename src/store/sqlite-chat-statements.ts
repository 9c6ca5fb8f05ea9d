import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import type { ChatCursor, FinishedReply, NewTurn, OpenedTurn, Rewind, TurnOpening } from '../chat/ports';
import { AppError } from '../errors/app-error';
import type { PendingPurge } from './deleted-chat-purge';
import {
  CHAT_COLUMNS,
  finishedReplyColumns,
  clientIdTaken,
  MESSAGE_COLUMNS,
  rewoundMessages,
  toChatSummary,
  toStoredMessage,
  turnMessageRows,
  type ChatRow,
  type MessageRow,
} from './stored-rows';

/**
 * Messages removed per statement when a deleted chat is purged. A batch holds the write lock while
 * it runs, and the turns' writes wait for it: a few milliseconds each (each message touches a random
 * leaf of the id index, which a large file no longer keeps in SQLite's page cache).
 */
export const PURGE_BATCH = 100;

/** Removes up to PURGE_BATCH messages of a purge: ownerId, chatId, upToSeq. Run by a server's worker thread (sqlite-worker-thread.ts). */
export const PURGE_BATCH_SQL = `DELETE FROM "Message" WHERE "seq" IN
  (SELECT "seq" FROM "Message" WHERE "ownerId" = ? AND "chatId" = ? AND "seq" <= ? ORDER BY "seq" LIMIT ${PURGE_BATCH})`;

interface ChatHead {
  systemPrompt: string | null;
  messageCount: number;
  baseSeq: number;
}

/** A turn as the write transaction takes it: a given prompt hash, or one worked out from the prompt in force. */
type TurnWrite = Omit<TurnOpening, 'reply'> & { reply: TurnOpening['reply']; systemPromptHash: string | undefined };

/** The chat row as a turn reads it: its head, and its newest reply with the instance that opened it. */
interface TurnHead extends ChatHead {
  lastReplyId: string | null;
  lastReplyStatus: string | null;
  instanceId: string | null;
}

/**
 * Every chat and message query of the SQLite store, prepared once on the store's one connection.
 *
 * They run synchronously (better-sqlite3), each to its end, so no write lock is held across an
 * `await`; a chat's history and the list read the page's rows only (the chat row keeps its count
 * and newest reply), so no call grows with the database. Timestamps are written as Prisma writes
 * a DateTime to SQLite (`…+00:00` ISO text, which orders as time), booleans as 0/1.
 */
export class SqliteChatStatements {
  private readonly statements;
  private readonly writeTurn;
  private readonly readRecent;
  private readonly readPage;
  private readonly writeFinish;
  private readonly sweep;
  private readonly removeChat;

  constructor(database: Database.Database) {
    const prepare = <Row = unknown>(sql: string) => database.prepare<unknown[], Row>(sql);
    this.statements = {
      head: prepare<ChatHead>(`SELECT "systemPrompt", "messageCount", "baseSeq" FROM "Chat" WHERE "ownerId" = ? AND "id" = ?`),
      // `seq` is the insertion order: timestamps can tie, it cannot. Rows at or below `baseSeq`
      // belong to a deleted chat of the same id whose purge has not reached them yet.
      newest: prepare<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM "Message" WHERE "ownerId" = ? AND "chatId" = ? AND "seq" > ? AND "seq" < ? ORDER BY "seq" DESC LIMIT ?`,
      ),
      // A message by the id the API shows: the client's if it gave one, else the row's own.
      anchor: prepare<{ seq: number; role: string }>(
        `SELECT "seq", "role" FROM "Message" WHERE "ownerId" = @ownerId AND "chatId" = @chatId AND "seq" > @above
           AND ("clientId" = @messageId OR ("id" = @messageId AND "clientId" IS NULL))`,
      ),
      newestMessage: prepare<{ seq: number; role: string }>(
        `SELECT "seq", "role" FROM "Message" WHERE "ownerId" = ? AND "chatId" = ? AND "seq" > ? ORDER BY "seq" DESC LIMIT 1`,
      ),
      editMessage: prepare(`UPDATE "Message" SET "content" = ?, "tokenCount" = ?, "updatedAt" = ? WHERE "seq" = ?`),
      removeFrom: prepare(`DELETE FROM "Message" WHERE "ownerId" = ? AND "chatId" = ? AND "seq" >= ?`),
      uncount: prepare(`UPDATE "Chat" SET "messageCount" = "messageCount" - ? WHERE "ownerId" = ? AND "id" = ?`),
      chat: prepare<ChatRow>(`SELECT ${CHAT_COLUMNS} FROM "Chat" WHERE "ownerId" = ? AND "id" = ?`),
      firstChats: prepare<ChatRow>(`SELECT ${CHAT_COLUMNS} FROM "Chat" WHERE "ownerId" = ? ORDER BY "updatedAt" DESC, "id" DESC LIMIT ?`),
      // A row value, not `updatedAt < ? OR (updatedAt = ? AND id < ?)`: with bound parameters SQLite
      // seeks the index by ownerId only for the OR form and walks every newer chat, so a page's cost
      // grew with its depth (bench/scale-results.md); the row value seeks straight to the cursor.
      laterChats: prepare<ChatRow>(
        `SELECT ${CHAT_COLUMNS} FROM "Chat" WHERE "ownerId" = ? AND ("updatedAt", "id") < (?, ?)
         ORDER BY "updatedAt" DESC, "id" DESC LIMIT ?`,
      ),
      turnHead: prepare<TurnHead>(
        `SELECT c."systemPrompt", c."messageCount", c."baseSeq", c."lastReplyId", c."lastReplyStatus", m."instanceId"
         FROM "Chat" c LEFT JOIN "Message" m ON m."id" = c."lastReplyId"
         WHERE c."ownerId" = ? AND c."id" = ?`,
      ),
      purgedUpTo: prepare<{ upToSeq: number }>(
        `SELECT COALESCE(MAX("upToSeq"), 0) AS "upToSeq" FROM "ChatPurge" WHERE "ownerId" = ? AND "chatId" = ?`,
      ),
      upsertChat: prepare(
        `INSERT INTO "Chat" ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt", "messageCount",
           "lastReplyId", "lastReplyStatus", "baseSeq")
         VALUES (@chatId, @ownerId, @title, 'auto', @systemPrompt, @now, @now, @count, @replyId, 'streaming', @baseSeq)
         ON CONFLICT ("ownerId", "id") DO UPDATE SET
           "updatedAt" = excluded."updatedAt",
           "systemPrompt" = CASE WHEN @setPrompt THEN excluded."systemPrompt" ELSE "systemPrompt" END,
           "titleSource" = CASE WHEN "title" IS NULL THEN 'auto' ELSE "titleSource" END,
           "title" = COALESCE("title", excluded."title"),
           "messageCount" = "messageCount" + excluded."messageCount",
           "lastReplyId" = excluded."lastReplyId",
           "lastReplyStatus" = 'streaming'`,
      ),
      insertMessage: prepare(
        `INSERT INTO "Message" ("id", "clientId", "ownerId", "chatId", "role", "content", "status", "tokenCount", "usageEstimated",
           "model", "systemPromptHash", "instanceId", "createdAt", "updatedAt")
         VALUES (@id, @clientId, @ownerId, @chatId, @role, @content, @status, @tokenCount, 0, @model, @systemPromptHash, @instanceId,
           @now, @now)`,
      ),
      interruptOne: prepare(`UPDATE "Message" SET "status" = 'interrupted', "updatedAt" = ? WHERE "id" = ? AND "status" = 'streaming'`),
      progress: prepare(`UPDATE "Message" SET "content" = @content, "updatedAt" = @now WHERE "id" = @messageId AND "status" = 'streaming'`),
      finish: prepare<{ ownerId: string; chatId: string }>(
        `UPDATE "Message" SET "content" = @content, "status" = @status, "finishReason" = @finishReason,
           "tokenCount" = @tokenCount, "promptTokens" = @promptTokens, "completionTokens" = @completionTokens,
           "totalTokens" = @totalTokens, "usageEstimated" = @usageEstimated, "timeToFirstTokenMs" = @timeToFirstTokenMs,
           "durationMs" = @durationMs, "updatedAt" = @now
         WHERE "id" = @messageId RETURNING "ownerId", "chatId"`,
      ),
      chatReplyStatus: prepare(`UPDATE "Chat" SET "lastReplyStatus" = ? WHERE "ownerId" = ? AND "id" = ? AND "lastReplyId" = ?`),
      // The index on (status, instanceId) keeps this to the replies still streaming.
      abandoned: prepare<{ id: string; ownerId: string; chatId: string }>(
        `UPDATE "Message" SET "status" = 'interrupted', "updatedAt" = @now
         WHERE "status" = 'streaming' AND ("instanceId" IS NULL OR (@includeOwn AND "instanceId" = @instanceId) OR ("instanceId" <> @instanceId
           AND NOT EXISTS (SELECT 1 FROM "InstanceLease" l WHERE l."instanceId" = "Message"."instanceId" AND l."expiresAt" > @now)))
         RETURNING "id", "ownerId", "chatId"`,
      ),
      changeChat: prepare(
        `UPDATE "Chat" SET
           "title" = CASE WHEN @setTitle THEN @title ELSE "title" END,
           "titleSource" = CASE WHEN @setTitle THEN 'user' ELSE "titleSource" END,
           "systemPrompt" = CASE WHEN @setPrompt THEN @systemPrompt ELSE "systemPrompt" END,
           "updatedAt" = @now
         WHERE "ownerId" = @ownerId AND "id" = @chatId`,
      ),
      generatedTitle: prepare(
        `UPDATE "Chat" SET "title" = @title, "titleSource" = 'model', "updatedAt" = @now
         WHERE "ownerId" = @ownerId AND "id" = @chatId AND "titleSource" IS NOT 'user'`,
      ),
      deleteChat: prepare(`DELETE FROM "Chat" WHERE "ownerId" = ? AND "id" = ?`),
      // MAX of the rowid is read from the end of the table's b-tree: constant time.
      recordPurge: prepare(
        `INSERT OR IGNORE INTO "ChatPurge" ("ownerId", "chatId", "upToSeq", "deletedAt")
         VALUES (?, ?, (SELECT COALESCE(MAX("seq"), 0) FROM "Message"), ?)`,
      ),
      pendingPurges: prepare<PendingPurge>(`SELECT "ownerId", "chatId", "upToSeq" FROM "ChatPurge" ORDER BY "deletedAt", "ownerId", "chatId"`),
      purgeBatch: prepare(PURGE_BATCH_SQL),
      purgeDone: prepare(`DELETE FROM "ChatPurge" WHERE "ownerId" = ? AND "chatId" = ? AND "upToSeq" = ?`),
      ping: prepare(`SELECT 1 FROM "Chat" LIMIT 1`),
    };
    const s = this.statements;

    // One snapshot, so the head and the messages agree even if another process writes between them.
    this.readRecent = database.transaction((chatId: string, ownerId: string, limit: number) => {
      const head = s.head.get(ownerId, chatId);
      return head && { head, rows: s.newest.all(ownerId, chatId, head.baseSeq, Number.MAX_SAFE_INTEGER, limit) };
    });
    this.readPage = database.transaction((chatId: string, ownerId: string, limit: number, before: string | undefined) => {
      const head = s.head.get(ownerId, chatId);
      if (!head) return undefined;
      let beforeSeq = Number.MAX_SAFE_INTEGER;
      if (before !== undefined) {
        const anchor = s.anchor.get({ messageId: before, ownerId, chatId, above: head.baseSeq });
        if (!anchor) throw new AppError('invalid_request', '`before` is not the id of a message of this chat.');
        beforeSeq = anchor.seq;
      }
      return s.newest.all(ownerId, chatId, head.baseSeq, beforeSeq, limit + 1);
    });
    this.writeTurn = database.transaction((turn: TurnWrite, now: string): OpenedTurn => {
      const { chatId, ownerId, systemPrompt, title, reply } = turn;
      const head = s.turnHead.get(ownerId, chatId);
      if (turn.rewind && !head) throw new AppError('chat_not_found', 'No chat has this id.');
      const history = (messageCount: number) =>
        head
          ? {
              systemPrompt: head.systemPrompt,
              messageCount,
              messages: turn.historyLimit > 0 ? s.newest.all(ownerId, chatId, head.baseSeq, Number.MAX_SAFE_INTEGER, turn.historyLimit).reverse().map(toStoredMessage) : [],
            }
          : null;
      let promptHash = turn.systemPromptHash;
      if (promptHash === undefined) {
        const prompt = systemPrompt ?? head?.systemPrompt ?? turn.defaultPrompt;
        if (turn.maxPromptBytes !== null && Buffer.byteLength(prompt) > turn.maxPromptBytes) return { stored: false, before: history(head?.messageCount ?? 0) };
        promptHash = sha256(prompt);
      }
      if (head?.lastReplyStatus === 'streaming' && head.lastReplyId) {
        if (head.instanceId !== reply.instanceId) throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
        // This instance's own reply, which its process no longer runs (see ChatStore.beginTurn).
        s.interruptOne.run(now, head.lastReplyId);
      }
      const removed = head && turn.rewind ? rewind(turn.rewind, { ownerId, chatId, above: head.baseSeq }, now) : 0;
      for (const message of turn.messages) {
        if (message.clientId !== undefined && head && s.anchor.get({ messageId: message.clientId, ownerId, chatId, above: head.baseSeq })) {
          throw clientIdTaken(message.clientId);
        }
      }
      const before = history((head?.messageCount ?? 0) - removed);
      const rows = turnMessageRows(turn, promptHash);
      const baseSeq = head ? 0 : s.purgedUpTo.get(ownerId, chatId)!.upToSeq;
      s.upsertChat.run({
        chatId,
        ownerId,
        title,
        systemPrompt: systemPrompt ?? null,
        setPrompt: systemPrompt === undefined ? 0 : 1,
        now,
        count: rows.length,
        replyId: reply.id,
        baseSeq,
      });
      for (const row of rows) s.insertMessage.run({ ...row, now });
      return { stored: true, before };
    });
    /** Applies a turn's rewind (see Rewind); returns how many messages it removed. */
    const rewind = (change: Rewind, chat: { ownerId: string; chatId: string; above: number }, now: string): number => {
      const { ownerId, chatId } = chat;
      const named = change.messageId === undefined ? s.newestMessage.get(ownerId, chatId, chat.above) : s.anchor.get({ ...chat, messageId: change.messageId });
      const removed = rewoundMessages(change, named);
      if (!removed) return 0;
      if (change.type === 'edit') s.editMessage.run(change.content, change.tokenCount, now, removed.seq);
      const { changes } = s.removeFrom.run(ownerId, chatId, removed.inclusive ? removed.seq : removed.seq + 1);
      s.uncount.run(changes, ownerId, chatId);
      return changes;
    };
    this.writeFinish = database.transaction((messageId: string, reply: FinishedReply, now: string) => {
      const columns = finishedReplyColumns(reply);
      const row = s.finish.get({ ...columns, usageEstimated: columns.usageEstimated ? 1 : 0, messageId, now });
      if (!row) return false;
      s.chatReplyStatus.run(reply.status, row.ownerId, row.chatId, messageId);
      return true;
    });
    this.sweep = database.transaction((instanceId: string, includeOwn: boolean, now: string) => {
      const swept = s.abandoned.all({ instanceId, includeOwn: includeOwn ? 1 : 0, now });
      for (const reply of swept) s.chatReplyStatus.run('interrupted', reply.ownerId, reply.chatId, reply.id);
      return swept.length;
    });
    this.removeChat = database.transaction((chatId: string, ownerId: string, now: string) => {
      if (s.deleteChat.run(ownerId, chatId).changes === 0) return false;
      s.recordPurge.run(ownerId, chatId, now);
      return true;
    });
  }

  loadRecent(chatId: string, ownerId: string, limit: number) {
    const found = this.readRecent(chatId, ownerId, limit);
    if (!found) return null;
    const { head, rows } = found;
    return { systemPrompt: head.systemPrompt, messageCount: head.messageCount, messages: rows.reverse().map(toStoredMessage) };
  }

  /** @throws AppError generation_in_progress when another instance's reply of the chat is streaming. */
  beginTurn(turn: NewTurn): void {
    const { reply, ...rest } = turn;
    this.write({ ...rest, reply, systemPromptHash: reply.systemPromptHash, defaultPrompt: '', historyLimit: 0, maxPromptBytes: null });
  }

  /** Reads the chat and begins the turn in one transaction (see ChatStore.openTurn). */
  openTurn(turn: TurnOpening): OpenedTurn {
    return this.write({ ...turn, systemPromptHash: undefined });
  }

  private write(turn: TurnWrite): OpenedTurn {
    // IMMEDIATE takes the write lock first: a deferred transaction that read first could find the
    // lock taken after its read, and then no wait would help.
    return this.writeTurn.immediate(turn, timestamp());
  }

  saveProgress(messageId: string, content: string): void {
    this.statements.progress.run({ messageId, content, now: timestamp() });
  }

  /** @returns false when the reply's row is gone. */
  finishReply(messageId: string, reply: FinishedReply): boolean {
    return this.writeFinish.immediate(messageId, reply, timestamp());
  }

  interruptAbandonedReplies(instanceId: string, includeOwn: boolean): number {
    return this.sweep.immediate(instanceId, includeOwn, timestamp());
  }

  listMessages(chatId: string, ownerId: string, page: { limit: number; before?: string }) {
    const rows = this.readPage(chatId, ownerId, page.limit, page.before);
    if (!rows) return null;
    return { messages: rows.slice(0, page.limit).reverse().map(toStoredMessage), hasMore: rows.length > page.limit };
  }

  listChats(ownerId: string, page: { limit: number; cursor?: ChatCursor }) {
    const { cursor, limit } = page;
    const rows = cursor
      ? this.statements.laterChats.all(ownerId, sqliteTime(cursor.updatedAt), cursor.chatId, limit + 1)
      : this.statements.firstChats.all(ownerId, limit + 1);
    return { chats: rows.slice(0, limit).map(toChatSummary), hasMore: rows.length > limit };
  }

  getChat(chatId: string, ownerId: string) {
    const row = this.statements.chat.get(ownerId, chatId);
    return row ? toChatSummary(row) : null;
  }

  /** @returns false when the owner has no such chat. */
  updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }): boolean {
    const { changes: changed } = this.statements.changeChat.run({
      chatId,
      ownerId,
      setTitle: changes.title === undefined ? 0 : 1,
      title: changes.title ?? null,
      setPrompt: changes.systemPrompt === undefined ? 0 : 1,
      systemPrompt: changes.systemPrompt ?? null,
      now: timestamp(),
    });
    return changed > 0;
  }

  setGeneratedTitle(chatId: string, ownerId: string, title: string): void {
    this.statements.generatedTitle.run({ chatId, ownerId, title, now: timestamp() });
  }

  /** Removes the chat row and records its messages for the purge: constant time, whatever the chat's size. */
  deleteChat(chatId: string, ownerId: string): boolean {
    return this.removeChat.immediate(chatId, ownerId, timestamp());
  }

  /** The pending purges, oldest first. */
  pendingPurges(): PendingPurge[] {
    return this.statements.pendingPurges.all();
  }

  /** Removes up to PURGE_BATCH messages of the purge. @returns how many were removed. */
  removePurgeBatch(purge: PendingPurge): number {
    return this.statements.purgeBatch.run(purge.ownerId, purge.chatId, purge.upToSeq).changes;
  }

  finishPurge(purge: PendingPurge): void {
    this.statements.purgeDone.run(purge.ownerId, purge.chatId, purge.upToSeq);
  }

  ping(): void {
    this.statements.ping.get();
  }
}

/** Now, as Prisma writes a DateTime to SQLite. */
export function timestamp(): string {
  return sqliteTime(new Date());
}

export function sqliteTime(date: Date): string {
  return date.toISOString().replace('Z', '+00:00');
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
