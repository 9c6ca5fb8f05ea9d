import { randomUUID } from 'node:crypto';
import type { ChatMessage, ChatStore, FinalStatus, FinishReason, MessageStatus, Role, StoredMessage, Usage } from '../chat/ports';
import type { PrismaClient } from './generated/client';

const MESSAGE_FIELDS = { id: true, role: true, content: true, status: true, finishReason: true, createdAt: true } as const;

interface MessageRow {
  id: string;
  role: string;
  content: string;
  status: string;
  finishReason: string | null;
  createdAt: Date;
}

/** The ChatStore on Prisma: the only place that knows table and column names. */
export class PrismaChatStore implements ChatStore {
  constructor(private readonly prisma: PrismaClient) {}

  async loadRecent(chatId: string, limit: number) {
    const chat = await this.prisma.chat.findUnique({
      where: { id: chatId },
      select: {
        systemPrompt: true,
        // `seq` is the insertion order: timestamps can tie, it cannot.
        messages: { select: MESSAGE_FIELDS, orderBy: { seq: 'desc' }, take: limit },
      },
    });
    if (!chat) return null;
    return { systemPrompt: chat.systemPrompt, messages: chat.messages.reverse().map(toStoredMessage) };
  }

  async beginTurn(turn: { chatId: string; systemPrompt: string | undefined; messages: ChatMessage[]; assistantMessageId: string }) {
    const { chatId, systemPrompt, messages, assistantMessageId } = turn;
    const rows: Array<{ id: string; chatId: string; role: string; content: string; status: string }> = messages.map((message) => ({
      id: randomUUID(),
      chatId,
      role: message.role,
      content: message.content,
      status: 'completed',
    }));
    rows.push({ id: assistantMessageId, chatId, role: 'assistant', content: '', status: 'streaming' });
    await this.prisma.$transaction([
      this.prisma.chat.upsert({
        where: { id: chatId },
        create: { id: chatId, systemPrompt: systemPrompt ?? null },
        // Touching updatedAt on every turn keeps "latest activity" right; the prompt changes only when sent.
        update: systemPrompt === undefined ? { updatedAt: new Date() } : { systemPrompt },
      }),
      // One row at a time: createMany gives no order guarantee for the autoincrement key on every database.
      ...rows.map((data) => this.prisma.message.create({ data, select: { seq: true } })),
    ]);
  }

  async saveProgress(messageId: string, content: string) {
    await this.prisma.message.updateMany({ where: { id: messageId, status: 'streaming' }, data: { content } });
  }

  async finishReply(
    messageId: string,
    reply: { content: string; status: FinalStatus; finishReason: FinishReason | null; usage: Usage | null },
  ) {
    await this.prisma.message.update({
      where: { id: messageId },
      data: {
        content: reply.content,
        status: reply.status,
        finishReason: reply.finishReason,
        promptTokens: reply.usage?.promptTokens ?? null,
        completionTokens: reply.usage?.completionTokens ?? null,
      },
      select: { seq: true },
    });
  }

  async interruptAbandonedReplies() {
    const { count } = await this.prisma.message.updateMany({ where: { status: 'streaming' }, data: { status: 'interrupted' } });
    return count;
  }

  async listMessages(chatId: string) {
    const chat = await this.prisma.chat.findUnique({
      where: { id: chatId },
      select: { messages: { select: MESSAGE_FIELDS, orderBy: { seq: 'asc' } } },
    });
    return chat ? chat.messages.map(toStoredMessage) : null;
  }

  async ping() {
    // Reads a real table, so a missing or broken schema counts as not ready.
    await this.prisma.chat.findFirst({ select: { id: true } });
  }

  async close() {
    await this.prisma.$disconnect();
  }
}

function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    id: row.id,
    role: row.role as Role,
    content: row.content,
    status: row.status as MessageStatus,
    finishReason: row.finishReason as FinishReason | null,
    createdAt: row.createdAt,
  };
}
