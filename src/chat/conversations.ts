import { AppError } from '../errors/app-error';
import type { ChatService } from './chat-service';
import type { ChatCursor, ChatStore, ChatSummary, StoredMessage } from './ports';

/** Chats as things to list, read, rename and delete. */
export class Conversations {
  constructor(
    private readonly store: ChatStore,
    private readonly chat: ChatService,
  ) {}

  /** A page of chats, newest activity first, and the cursor of the next page (null at the end). */
  async list(ownerId: string, limit: number, cursor: string | undefined): Promise<{ chats: ChatSummary[]; nextCursor: string | null }> {
    const page = await this.store.listChats(ownerId, { limit, cursor: cursor === undefined ? undefined : decodeCursor(cursor) });
    const last = page.chats.at(-1);
    return { chats: page.chats, nextCursor: page.hasMore && last ? encodeCursor({ updatedAt: last.updatedAt, chatId: last.chatId }) : null };
  }

  /** @throws AppError chat_not_found */
  async get(chatId: string, ownerId: string): Promise<ChatSummary> {
    return found(await this.store.getChat(chatId, ownerId));
  }

  /** @throws AppError chat_not_found */
  async update(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }): Promise<ChatSummary> {
    return found(await this.store.updateChat(chatId, ownerId, changes));
  }

  /** Stops the chat's reply in progress, then deletes the chat and its messages. @throws AppError chat_not_found */
  async delete(chatId: string, ownerId: string): Promise<void> {
    await this.chat.cancel(chatId, ownerId);
    if (!(await this.store.deleteChat(chatId, ownerId))) throw notFound();
  }

  /**
   * Up to `limit` messages before message `before` (or the newest), oldest first.
   * @throws AppError chat_not_found, invalid_request (unknown `before`)
   */
  async messages(
    chatId: string,
    ownerId: string,
    limit: number,
    before: string | undefined,
  ): Promise<{ messages: StoredMessage[]; nextBefore: string | null }> {
    const page = found(await this.store.listMessages(chatId, ownerId, { limit, before }));
    return { messages: page.messages, nextBefore: page.hasMore ? (page.messages[0]?.id ?? null) : null };
  }
}

function found<T>(value: T | null): T {
  if (value === null) throw notFound();
  return value;
}

function notFound(): AppError {
  return new AppError('chat_not_found', 'No chat has this id.');
}

/** Cursors are opaque to clients: base64url of the last chat's activity time and id. */
function encodeCursor(cursor: ChatCursor): string {
  return Buffer.from(`${cursor.updatedAt.toISOString()}|${cursor.chatId}`).toString('base64url');
}

function decodeCursor(text: string): ChatCursor {
  const [time, chatId] = Buffer.from(text, 'base64url').toString('utf8').split('|');
  const updatedAt = new Date(time ?? '');
  if (!chatId || Number.isNaN(updatedAt.getTime())) throw new AppError('invalid_request', '`cursor` is not a cursor this service gave out.');
  return { updatedAt, chatId };
}
