import type { ChatCursor, ChatStore, FinishedReply, NewTurn, TurnOpening } from '../chat/ports';
import type { DatabaseFile } from './database-file';
import type { DatabaseOwnerLock } from './database-owner-lock';
import { DeletedChatPurge } from './deleted-chat-purge';
import { waitForLock } from './lock-wait';
import type { SqliteChatStatements } from './sqlite-chat-statements';
import type { SqliteLeaseStatements } from './sqlite-lease-statements';
import type { SqliteWorkerThread } from './sqlite-worker-thread';

export interface SqliteChatStoreParts {
  statements: SqliteChatStatements;
  leases: SqliteLeaseStatements;
  file: DatabaseFile;
  /** How long a call waits for a lock another process holds before it gives up. */
  lockWaitMs: number;
  /** Closes the connection the statements run on (and the checkpointer beside it). */
  closeConnection: () => Promise<void>;
  /** Held by a serving process (not by the keys CLI); given up on close. */
  ownerLock?: DatabaseOwnerLock;
  /** A serving process's worker thread, which runs the purge batches off the event loop. */
  worker?: SqliteWorkerThread;
}

/**
 * The chat store on SQLite, on prepared statements. Every call waits for locks held by other
 * processes on timers (`waitForLock`), never inside SQLite, so another process can delay a
 * request but never the event loop; the purge of a deleted chat runs a batch at a time, on a
 * serving process's worker thread.
 */
export class SqliteChatStore implements ChatStore {
  private readonly purge: DeletedChatPurge;

  constructor(private readonly parts: SqliteChatStoreParts) {
    const { statements } = parts;
    this.purge = new DeletedChatPurge({
      pending: () => this.wait(() => statements.pendingPurges()),
      removeBatch: (purge) => parts.worker?.removePurgeBatch(purge) ?? this.wait(() => statements.removePurgeBatch(purge)),
      finish: (purge) => this.wait(() => statements.finishPurge(purge)),
    });
  }

  loadRecent(chatId: string, ownerId: string, limit: number) {
    return this.wait(() => this.parts.statements.loadRecent(chatId, ownerId, limit));
  }

  beginTurn(turn: NewTurn) {
    return this.wait(() => this.parts.statements.beginTurn(turn));
  }

  openTurn(turn: TurnOpening) {
    return this.wait(() => this.parts.statements.openTurn(turn));
  }

  async saveProgress(messageId: string, content: string) {
    this.parts.statements.saveProgress(messageId, content);
  }

  async finishReply(messageId: string, reply: FinishedReply) {
    return this.parts.statements.finishReply(messageId, reply);
  }

  interruptAbandonedReplies(sweeper: { instanceId: string; includeOwn: boolean }) {
    return this.wait(() => this.parts.statements.interruptAbandonedReplies(sweeper.instanceId, sweeper.includeOwn));
  }

  renewLease(instanceId: string, leaseMs: number) {
    return this.wait(() => this.parts.leases.renewLease(instanceId, leaseMs));
  }

  releaseLease(instanceId: string) {
    return this.wait(() => this.parts.leases.releaseLease(instanceId));
  }

  listMessages(chatId: string, ownerId: string, page: { limit: number; before?: string }) {
    return this.wait(() => this.parts.statements.listMessages(chatId, ownerId, page));
  }

  listChats(ownerId: string, page: { limit: number; cursor?: ChatCursor }) {
    return this.wait(() => this.parts.statements.listChats(ownerId, page));
  }

  getChat(chatId: string, ownerId: string) {
    return this.wait(() => this.parts.statements.getChat(chatId, ownerId));
  }

  async updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }) {
    const updated = await this.wait(() => this.parts.statements.updateChat(chatId, ownerId, changes));
    return updated ? this.getChat(chatId, ownerId) : null;
  }

  setGeneratedTitle(chatId: string, ownerId: string, title: string) {
    return this.wait(() => this.parts.statements.setGeneratedTitle(chatId, ownerId, title));
  }

  async deleteChat(chatId: string, ownerId: string) {
    const deleted = await this.wait(() => this.parts.statements.deleteChat(chatId, ownerId));
    if (deleted) void this.purgeDeletedChats().catch(() => undefined);
    return deleted;
  }

  purgeDeletedChats() {
    return this.purge.run();
  }

  async ping() {
    this.parts.file.check();
    await this.wait(() => this.parts.statements.ping());
  }

  async close() {
    await this.purge.stop();
    await this.parts.closeConnection();
    this.parts.ownerLock?.release();
  }

  private wait<T>(operation: () => T | Promise<T>): Promise<T> {
    return waitForLock(operation, this.parts.lockWaitMs);
  }
}
