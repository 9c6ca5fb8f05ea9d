import type { FinishedReply, NewTurn } from '../chat/ports';
import type { PrismaClient } from './generated/client';
import { PrismaChatStore } from './prisma-chat-store';
import type { SqliteTurnStatements } from './sqlite-turn-statements';

/**
 * The chat store on SQLite: every write and the reads each turn makes run on prepared
 * statements; the conversations API still reads through Prisma, which stays the portable store
 * (and the one a PostgreSQL deployment uses).
 */
export class SqliteChatStore extends PrismaChatStore {
  constructor(
    prisma: PrismaClient,
    private readonly statements: SqliteTurnStatements,
  ) {
    super(prisma);
  }

  override async loadRecent(chatId: string, limit: number) {
    return this.statements.loadRecent(chatId, limit);
  }

  override async chatOwner(chatId: string) {
    return this.statements.chatOwner(chatId);
  }

  override async beginTurn(turn: NewTurn) {
    this.statements.beginTurn(turn);
  }

  override async saveProgress(messageId: string, content: string) {
    this.statements.saveProgress(messageId, content);
  }

  override async finishReply(messageId: string, reply: FinishedReply) {
    this.statements.finishReply(messageId, reply);
  }

  override async interruptAbandonedReplies() {
    return this.statements.interruptAbandonedReplies();
  }

  override async updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }) {
    return this.statements.updateChat(chatId, ownerId, changes) ? this.getChat(chatId, ownerId) : null;
  }

  override async setGeneratedTitle(chatId: string, title: string) {
    this.statements.setGeneratedTitle(chatId, title);
  }

  override async deleteChat(chatId: string, ownerId: string) {
    return this.statements.deleteChat(chatId, ownerId);
  }

  override async close() {
    this.statements.close();
    await super.close();
  }
}
