import type { UIMessage } from 'ai';
import { ApiError } from './api-error';

export interface ChatSummary {
  chatId: string;
  title: string | null;
  systemPrompt?: string | null;
  createdAt: string;
  updatedAt: string;
  messageCount: number;
  lastReplyStatus: string | null;
}

export interface ChatPage {
  chats: ChatSummary[];
  nextCursor: string | null;
}

/** What the service puts in a reply's metadata (stream parts and `?format=ui` history). */
export interface ReplyMetadata {
  status?: string;
  usage?: { promptTokens: number; completionTokens: number; totalTokens: number } | null;
  usageEstimated?: boolean;
  model?: string | null;
  timeToFirstTokenMs?: number | null;
  durationMs?: number | null;
  finishReason?: string | null;
}

export type ChatMessage = UIMessage<ReplyMetadata>;

export type ApiFetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/**
 * fetch with the key as `Authorization: Bearer` (none when auth is off). A response that is not
 * ok rejects with an ApiError, so callers (and useChat, through its transport) get the API's
 * own words and `Retry-After`, not the raw body text.
 */
export function authorizedFetch(key: string | null): ApiFetch {
  return async (input, init = {}) => {
    const headers = new Headers(init.headers);
    if (key) headers.set('authorization', `Bearer ${key}`);
    const response = await fetch(input, { ...init, headers });
    if (!response.ok) throw await ApiError.from(response);
    return response;
  };
}

const chatPath = (chatId: string) => `/api/chats/${encodeURIComponent(chatId)}`;
const json = (body: unknown): RequestInit => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

/** The service's conversation routes, for one key. */
export function createApiClient(key: string | null) {
  const send = authorizedFetch(key);
  const read = async <T>(path: string, init?: RequestInit) => (await (await send(path, init)).json()) as T;
  /** undefined when the chat does not exist (yet): a new chat. */
  const unlessMissing = async <T>(promise: Promise<T>) =>
    promise.catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    });
  return {
    key,
    fetch: send,
    listChats: (cursor?: string | null) =>
      read<ChatPage>(`/api/chats?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
    getChat: (chatId: string) => unlessMissing(read<ChatSummary>(chatPath(chatId))),
    updateChat: (chatId: string, changes: { title?: string; systemPrompt?: string | null }) =>
      read<ChatSummary>(chatPath(chatId), { method: 'PATCH', ...json(changes) }),
    deleteChat: async (chatId: string) => {
      await send(chatPath(chatId), { method: 'DELETE' });
    },
    history: async (chatId: string, before?: string) => {
      const query = `?format=ui&limit=${HISTORY_PAGE}${before ? `&before=${encodeURIComponent(before)}` : ''}`;
      const page = await unlessMissing(read<{ messages: ChatMessage[] }>(`${chatPath(chatId)}/messages${query}`));
      return page?.messages ?? [];
    },
    /** Stops the reply in progress on the service; its final status, or undefined if none was running. */
    cancelReply: async (chatId: string) => {
      const response = await send(`/api/chat/${encodeURIComponent(chatId)}/stream`, { method: 'DELETE' });
      return response.status === 200 ? ((await response.json()) as { status: string; messageId: string }) : undefined;
    },
  };
}

export const HISTORY_PAGE = 100;

export type ApiClient = ReturnType<typeof createApiClient>;
