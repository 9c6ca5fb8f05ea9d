import type { ChatCursor, ChatStore, ChatSummary, FinishedReply, NewTurn, OpenedTurn, RecentHistory, TurnOpening } from '../chat/ports';
import { AppError } from '../errors/app-error';
import type { DeletedChatPurge } from './deleted-chat-purge';
import type { PostgresqlKeyCache } from './postgresql-key-cache';
import * as statements from './postgresql-chat-statements';
import type { PostgresqlSql, SqlRunner } from './postgresql-sql';
import { clientIdTaken, finishedReplyColumns, rewoundMessages, toChatSummary, toStoredMessage, turnMessageRows, type ChatRow, type MessageRow } from './stored-rows';

export interface PostgresqlChatStoreParts {
  sql: PostgresqlSql;
  /** Started by deleteChat, stopped by close. */
  purge: DeletedChatPurge;
  /** The key store's cache of a serving process, which probes through the pool: stopped by close, before the pool. */
  keyCache?: PostgresqlKeyCache;
}

type RecentRow = MessageRow & { chatSystemPrompt: string | null; chatMessageCount: number };
type TurnRow = RecentRow & { allowed: boolean; stored: number; chatExists: boolean };

/**
 * The chat store on PostgreSQL. Every call is one statement (listMessages: two), run through the
 * pool; a database that does not answer makes calls fail with AppError `service_unavailable`.
 */
export class PostgresqlChatStore implements ChatStore {
  constructor(private readonly parts: PostgresqlChatStoreParts) {}

  private get sql() {
    return this.parts.sql;
  }

  async loadRecent(chatId: string, ownerId: string, limit: number) {
    const rows = await this.sql.rows<RecentRow>(statements.LOAD_RECENT, ownerId, chatId, limit);
    return rows.length === 0 ? null : recentHistory(rows);
  }

  async beginTurn(turn: NewTurn) {
    const { reply, ...rest } = turn;
    await this.write(this.sql, { ...rest, reply, defaultPrompt: '', historyLimit: 0, maxPromptBytes: null }, reply.systemPromptHash);
  }

  openTurn(turn: TurnOpening) {
    // The common turn is one statement; one that rewinds the chat or names its messages checks
    // them first, under the chat's row lock, in one transaction with it.
    if (!turn.rewind && !turn.messages.some((message) => message.clientId !== undefined)) return this.write(this.sql, turn, null);
    return this.sql
      .transaction(async (transaction) => {
        const [chat] = await transaction.rows<{ lastReplyStatus: string | null; instanceId: string | null; above: string }>(
          statements.LOCK_CHAT,
          turn.ownerId,
          turn.chatId,
        );
        if (chat) await this.checkAndRewind(transaction, turn, chat);
        else if (turn.rewind) throw new AppError('chat_not_found', 'No chat has this id.');
        const opened = await this.write(transaction, turn, null);
        // Over the prompt's bound: what the rewind did goes back with the transaction.
        if (!opened.stored) throw new NotStored(opened);
        return opened;
      })
      .catch((error: unknown) => {
        if (error instanceof NotStored) return error.opened;
        throw error;
      });
  }

  /** The busy check (as BEGIN_TURN's), the rewind, and the new messages' ids, on the locked chat. */
  private async checkAndRewind(sql: SqlRunner, turn: TurnOpening, chat: { lastReplyStatus: string | null; instanceId: string | null; above: string }) {
    const { ownerId, chatId, rewind } = turn;
    if (chat.lastReplyStatus === 'streaming' && chat.instanceId !== turn.reply.instanceId) {
      throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
    }
    const find = async (messageId: string) => (await sql.rows<{ seq: string; role: string }>(statements.FIND_MESSAGE, ownerId, chatId, chat.above, messageId))[0];
    if (rewind) {
      const named =
        rewind.messageId === undefined
          ? (await sql.rows<{ seq: string; role: string }>(statements.NEWEST_MESSAGE, ownerId, chatId, chat.above))[0]
          : await find(rewind.messageId);
      const removed = rewoundMessages(rewind, named);
      if (removed) {
        if (rewind.type === 'edit') await sql.execute(statements.EDIT_MESSAGE, removed.seq, rewind.content, rewind.tokenCount, new Date());
        const from = removed.inclusive ? BigInt(removed.seq) : BigInt(removed.seq) + 1n;
        await sql.rows(statements.REMOVE_MESSAGES_FROM, ownerId, chatId, from.toString());
      }
    }
    for (const message of turn.messages) {
      if (message.clientId !== undefined && (await find(message.clientId))) throw clientIdTaken(message.clientId);
    }
  }

  /** BEGIN_TURN: with `systemPromptHash` null the statement hashes the prompt in force and applies the bound. */
  private async write(sql: SqlRunner, turn: TurnOpening, systemPromptHash: string | null): Promise<OpenedTurn> {
    const rows = turnMessageRows(turn, systemPromptHash);
    const column = <K extends keyof (typeof rows)[number]>(key: K) => rows.map((row) => row[key]);
    const read = await sql.rows<TurnRow>(
      statements.BEGIN_TURN,
      turn.ownerId,
      turn.chatId,
      turn.title,
      turn.systemPrompt ?? null,
      turn.systemPrompt !== undefined,
      new Date(),
      turn.reply.id,
      turn.reply.instanceId,
      column('id'),
      column('role'),
      column('content'),
      column('status'),
      column('tokenCount'),
      column('model'),
      column('systemPromptHash'),
      column('instanceId'),
      turn.defaultPrompt,
      turn.maxPromptBytes,
      turn.historyLimit,
      column('clientId'),
    );
    const [head] = read;
    const before = head?.chatExists ? recentHistory(read.map(({ allowed: _allowed, stored: _stored, chatExists: _exists, ...row }) => row)) : null;
    if (!head?.allowed) return { stored: false, before };
    if (head.stored !== 1) throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
    return { stored: true, before };
  }

  async saveProgress(messageId: string, content: string) {
    await this.sql.execute(statements.SAVE_PROGRESS, messageId, content, new Date());
  }

  async finishReply(messageId: string, reply: FinishedReply) {
    const columns = finishedReplyColumns(reply);
    const [result] = await this.sql.rows<{ found: number }>(
      statements.FINISH_REPLY,
      messageId,
      columns.content,
      columns.status,
      columns.finishReason,
      columns.tokenCount,
      columns.promptTokens,
      columns.completionTokens,
      columns.totalTokens,
      columns.usageEstimated,
      columns.timeToFirstTokenMs,
      columns.durationMs,
      new Date(),
    );
    return result?.found === 1;
  }

  async interruptAbandonedReplies(sweeper: { instanceId: string; includeOwn: boolean }) {
    const [result] = await this.sql.rows<{ swept: number }>(statements.INTERRUPT_ABANDONED, sweeper.instanceId, sweeper.includeOwn, new Date());
    return result?.swept ?? 0;
  }

  async renewLease(instanceId: string, leaseMs: number) {
    await this.sql.execute(statements.RENEW_LEASE, instanceId, Math.round(leaseMs));
  }

  async releaseLease(instanceId: string) {
    await this.sql.execute(statements.RELEASE_LEASE, instanceId);
  }

  purgeDeletedChats() {
    return this.parts.purge.run();
  }

  async listMessages(chatId: string, ownerId: string, page: { limit: number; before?: string }) {
    const [start] = await this.sql.rows<{ above: bigint; beforeSeq: bigint | null }>(
      statements.MESSAGE_PAGE_START,
      ownerId,
      chatId,
      page.before ?? null,
    );
    if (!start) return null;
    if (page.before !== undefined && start.beforeSeq === null) {
      throw new AppError('invalid_request', '`before` is not the id of a message of this chat.');
    }
    const rows = await this.sql.rows<MessageRow>(
      statements.MESSAGE_PAGE,
      ownerId,
      chatId,
      String(start.above),
      start.beforeSeq === null ? null : String(start.beforeSeq),
      page.limit + 1,
    );
    return { messages: rows.slice(0, page.limit).reverse().map(toStoredMessage), hasMore: rows.length > page.limit };
  }

  async listChats(ownerId: string, page: { limit: number; cursor?: ChatCursor }) {
    const { cursor, limit } = page;
    const rows = cursor
      ? await this.sql.rows<ChatRow>(statements.CHATS_AFTER, ownerId, limit + 1, cursor.updatedAt, cursor.chatId)
      : await this.sql.rows<ChatRow>(statements.FIRST_CHATS, ownerId, limit + 1);
    return { chats: rows.slice(0, limit).map(toChatSummary), hasMore: rows.length > limit };
  }

  async getChat(chatId: string, ownerId: string) {
    const [row] = await this.sql.rows<ChatRow>(statements.GET_CHAT, ownerId, chatId);
    return row ? toChatSummary(row) : null;
  }

  async updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }): Promise<ChatSummary | null> {
    const [row] = await this.sql.rows<ChatRow>(
      statements.UPDATE_CHAT,
      ownerId,
      chatId,
      changes.title !== undefined,
      changes.title ?? null,
      changes.systemPrompt !== undefined,
      changes.systemPrompt ?? null,
      new Date(),
    );
    return row ? toChatSummary(row) : null;
  }

  async setGeneratedTitle(chatId: string, ownerId: string, title: string) {
    await this.sql.execute(statements.SET_GENERATED_TITLE, ownerId, chatId, title, new Date());
  }

  async deleteChat(chatId: string, ownerId: string) {
    const deleted = (await this.sql.execute(statements.DELETE_CHAT, ownerId, chatId)) > 0;
    // The messages go in the background; a purge that fails or is stopped is resumed at the next
    // start (the server calls purgeDeletedChats then), and reads never show them meanwhile.
    if (deleted) this.parts.purge.run().catch(() => undefined);
    return deleted;
  }

  async ping() {
    await this.sql.rows(statements.PING);
  }

  async close() {
    await this.parts.purge.stop();
    await this.parts.keyCache?.stop();
    await this.sql.close();
  }
}

/** LOAD_RECENT's rows (the chat's head on each, and its messages newest first, or one row of nulls) as a history. */
function recentHistory(rows: RecentRow[]): RecentHistory {
  const [head] = rows;
  return {
    systemPrompt: head!.chatSystemPrompt,
    messageCount: Number(head!.chatMessageCount),
    messages: rows
      .filter((row) => row.id !== null)
      .reverse()
      .map(({ chatSystemPrompt: _prompt, chatMessageCount: _count, ...row }) => toStoredMessage(row)),
  };
}

/** Carries a turn over its prompt's bound out of its transaction, so that the transaction rolls back. */
class NotStored extends Error {
  constructor(readonly opened: OpenedTurn) {
    super('not stored');
  }
}
