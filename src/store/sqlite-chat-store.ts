import type { ChatCursor, ChatStore, FinishedReply, NewTurn } from '../chat/ports';
import type { DatabaseFile } from './database-file';
import type { DatabaseOwnerLock } from './database-owner-lock';
import { waitForLock } from './lock-wait';
import type { PrismaChatStore } from './prisma-chat-store';
import type { SqliteTurnStatements } from './sqlite-turn-statements';

export interface SqliteChatStoreParts {
  /** The conversations API's reads, through Prisma. */
  reads: PrismaChatStore;
  /** Every write, and the reads each turn makes, on prepared statements. */
  statements: SqliteTurnStatements;
  file: DatabaseFile;
  /** How long a call waits for a lock another process holds before it gives up. */
  lockWaitMs: number;
  /** Held by a serving process (not by the keys CLI); given up on close. */
  ownerLock?: DatabaseOwnerLock;
}

/**
 * The chat store on SQLite. The turn's hot path runs on prepared statements, the conversations
 * API's reads through Prisma; every call waits for locks held by other processes on timers
 * (`waitForLock`), never inside SQLite, so another process can delay a request but never the
 * event loop.
 */
export class SqliteChatStore implements ChatStore {
  constructor(private readonly parts: SqliteChatStoreParts) {}

  loadRecent(chatId: string, ownerId: string, limit: number) {
    return this.wait(() => this.parts.statements.loadRecent(chatId, ownerId, limit));
  }

  beginTurn(turn: NewTurn) {
    return this.wait(() => this.parts.statements.beginTurn(turn));
  }

  async saveProgress(messageId: string, content: string) {
    this.parts.statements.saveProgress(messageId, content);
  }

  async finishReply(messageId: string, reply: FinishedReply) {
    return this.parts.statements.finishReply(messageId, reply);
  }

  interruptAbandonedReplies() {
    return this.wait(() => this.parts.statements.interruptAbandonedReplies());
  }

  listMessages(chatId: string, ownerId: string, page: { limit: number; before?: string }) {
    return this.wait(() => this.parts.reads.listMessages(chatId, ownerId, page));
  }

  listChats(ownerId: string, page: { limit: number; cursor?: ChatCursor }) {
    return this.wait(() => this.parts.reads.listChats(ownerId, page));
  }

  getChat(chatId: string, ownerId: string) {
    return this.wait(() => this.parts.reads.getChat(chatId, ownerId));
  }

  async updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }) {
    const updated = await this.wait(() => this.parts.statements.updateChat(chatId, ownerId, changes));
    return updated ? this.getChat(chatId, ownerId) : null;
  }

  setGeneratedTitle(chatId: string, ownerId: string, title: string) {
    return this.wait(() => this.parts.statements.setGeneratedTitle(chatId, ownerId, title));
  }

  deleteChat(chatId: string, ownerId: string) {
    return this.wait(() => this.parts.statements.deleteChat(chatId, ownerId));
  }

  async ping() {
    this.parts.file.check();
    await this.wait(() => this.parts.reads.ping());
  }

  async close() {
    this.parts.statements.close();
    await this.parts.reads.close();
    this.parts.ownerLock?.release();
  }

  private wait<T>(operation: () => T | Promise<T>): Promise<T> {
    return waitForLock(operation, this.parts.lockWaitMs);
  }
}
