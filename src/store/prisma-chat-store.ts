import type {
  ChatCursor,
  ChatStore,
  ChatSummary,
  FinishedReply,
  FinishReason,
  MessageStatus,
  NewTurn,
  Role,
  StoredMessage,
} from '../chat/ports';
import { AppError } from '../errors/app-error';
import { finishedReplyColumns, newMessageRows } from './message-columns';
import type { PrismaClient } from './generated/sqlite/client';

const MESSAGE_FIELDS = {
  id: true,
  role: true,
  content: true,
  status: true,
  finishReason: true,
  createdAt: true,
  tokenCount: true,
  promptTokens: true,
  completionTokens: true,
  totalTokens: true,
  usageEstimated: true,
  model: true,
  timeToFirstTokenMs: true,
  durationMs: true,
  systemPromptHash: true,
} as const;

const CHAT_FIELDS = {
  id: true,
  title: true,
  systemPrompt: true,
  createdAt: true,
  updatedAt: true,
  _count: { select: { messages: true } },
  messages: { where: { role: 'assistant' }, orderBy: { seq: 'desc' }, take: 1, select: { status: true } },
} as const;

type MessageRow = Omit<StoredMessage, 'role' | 'status' | 'finishReason'> & { role: string; status: string; finishReason: string | null };

interface ChatRow {
  id: string;
  title: string | null;
  systemPrompt: string | null;
  createdAt: Date;
  updatedAt: Date;
  _count: { messages: number };
  messages: Array<{ status: string }>;
}

/** The ChatStore on Prisma: the only place that knows table and column names. */
export class PrismaChatStore implements ChatStore {
  constructor(private readonly prisma: PrismaClient) {}

  async loadRecent(chatId: string, ownerId: string, limit: number) {
    const chat = await this.prisma.chat.findUnique({
      where: { ownerId_id: { ownerId, id: chatId } },
      select: {
        systemPrompt: true,
        _count: { select: { messages: true } },
        // `seq` is the insertion order: timestamps can tie, it cannot.
        messages: { select: MESSAGE_FIELDS, orderBy: { seq: 'desc' }, take: limit },
      },
    });
    if (!chat) return null;
    return {
      systemPrompt: chat.systemPrompt,
      messageCount: chat._count.messages,
      messages: chat.messages.reverse().map(toStoredMessage),
    };
  }

  async beginTurn(turn: NewTurn) {
    const { chatId, ownerId, systemPrompt, title, reply } = turn;
    const rows = newMessageRows(turn);
    await this.prisma.$transaction([
      this.prisma.chat.upsert({
        where: { ownerId_id: { ownerId, id: chatId } },
        create: { id: chatId, ownerId, systemPrompt: systemPrompt ?? null, title, titleSource: 'auto' },
        // Touching updatedAt on every turn keeps "latest activity" right; the prompt changes only when sent.
        update: systemPrompt === undefined ? { updatedAt: new Date() } : { systemPrompt },
        select: { id: true },
      }),
      // Titles are set once, from the first message, unless a user already chose one.
      this.prisma.chat.updateMany({ where: { ownerId, id: chatId, title: null }, data: { title, titleSource: 'auto' } }),
      // One row at a time: createMany gives no order guarantee for the autoincrement key on every database.
      ...rows.map((data) => this.prisma.message.create({ data, select: { seq: true } })),
      this.prisma.message.create({
        data: { ...reply, ownerId, chatId, role: 'assistant', content: '', status: 'streaming' },
        select: { seq: true },
      }),
    ]);
  }

  async saveProgress(messageId: string, content: string) {
    await this.prisma.message.updateMany({ where: { id: messageId, status: 'streaming' }, data: { content } });
  }

  async finishReply(messageId: string, reply: FinishedReply) {
    const { count } = await this.prisma.message.updateMany({ where: { id: messageId }, data: finishedReplyColumns(reply) });
    return count > 0;
  }

  async interruptAbandonedReplies() {
    const { count } = await this.prisma.message.updateMany({ where: { status: 'streaming' }, data: { status: 'interrupted' } });
    return count;
  }

  async listMessages(chatId: string, ownerId: string, page: { limit: number; before?: string }) {
    const chat = await this.prisma.chat.findFirst({ where: { id: chatId, ownerId }, select: { id: true } });
    if (!chat) return null;
    let beforeSeq: number | undefined;
    if (page.before !== undefined) {
      const anchor = await this.prisma.message.findFirst({ where: { id: page.before, ownerId, chatId }, select: { seq: true } });
      if (!anchor) throw new AppError('invalid_request', '`before` is not the id of a message of this chat.');
      beforeSeq = anchor.seq;
    }
    const rows = await this.prisma.message.findMany({
      where: { ownerId, chatId, ...(beforeSeq === undefined ? {} : { seq: { lt: beforeSeq } }) },
      select: MESSAGE_FIELDS,
      orderBy: { seq: 'desc' },
      take: page.limit + 1,
    });
    const hasMore = rows.length > page.limit;
    return { messages: rows.slice(0, page.limit).reverse().map(toStoredMessage), hasMore };
  }

  async listChats(ownerId: string, page: { limit: number; cursor?: ChatCursor }) {
    const { cursor } = page;
    const rows = await this.prisma.chat.findMany({
      where: cursor
        ? { ownerId, OR: [{ updatedAt: { lt: cursor.updatedAt } }, { updatedAt: cursor.updatedAt, id: { lt: cursor.chatId } }] }
        : { ownerId },
      orderBy: [{ updatedAt: 'desc' }, { id: 'desc' }],
      take: page.limit + 1,
      select: CHAT_FIELDS,
    });
    return { chats: rows.slice(0, page.limit).map(toChatSummary), hasMore: rows.length > page.limit };
  }

  async getChat(chatId: string, ownerId: string) {
    const row = await this.prisma.chat.findFirst({ where: { id: chatId, ownerId }, select: CHAT_FIELDS });
    return row ? toChatSummary(row) : null;
  }

  async updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }) {
    const { count } = await this.prisma.chat.updateMany({
      where: { id: chatId, ownerId },
      data: {
        ...(changes.title === undefined ? {} : { title: changes.title, titleSource: 'user' }),
        ...(changes.systemPrompt === undefined ? {} : { systemPrompt: changes.systemPrompt }),
      },
    });
    return count === 0 ? null : this.getChat(chatId, ownerId);
  }

  async setGeneratedTitle(chatId: string, ownerId: string, title: string) {
    await this.prisma.chat.updateMany({ where: { ownerId, id: chatId, NOT: { titleSource: 'user' } }, data: { title, titleSource: 'model' } });
  }

  async deleteChat(chatId: string, ownerId: string) {
    const [, deleted] = await this.prisma.$transaction([
      this.prisma.message.deleteMany({ where: { ownerId, chatId } }),
      this.prisma.chat.deleteMany({ where: { id: chatId, ownerId } }),
    ]);
    return deleted.count > 0;
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
  return { ...row, role: row.role as Role, status: row.status as MessageStatus, finishReason: row.finishReason as FinishReason | null };
}

function toChatSummary(row: ChatRow): ChatSummary {
  return {
    chatId: row.id,
    title: row.title,
    systemPrompt: row.systemPrompt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    messageCount: row._count.messages,
    lastReplyStatus: (row.messages[0]?.status as MessageStatus | undefined) ?? null,
  };
}
