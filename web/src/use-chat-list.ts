import { useCallback, useEffect, useRef, useState } from 'react';
import type { ApiClient, ChatSummary } from './api-client';

/**
 * The chat list, newest activity first, a page of 20 at a time. `refresh` reloads the first page
 * (after a reply, a chat moves to the top) and keeps the older pages already loaded.
 */
export function useChatList(api: ApiClient, onError: (error: unknown) => void) {
  const [chats, setChats] = useState<ChatSummary[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const loadingMore = useRef(false);
  // With older pages loaded, their cursor stays right; with only the first, the new one is.
  const pagesLoaded = useRef(0);

  const refresh = useCallback(async () => {
    try {
      const page = await api.listChats();
      setChats((loaded) => {
        const fresh = new Set(page.chats.map((chat) => chat.chatId));
        return [...page.chats, ...loaded.filter((chat) => !fresh.has(chat.chatId))];
      });
      if (pagesLoaded.current <= 1) {
        pagesLoaded.current = 1;
        setNextCursor(page.nextCursor);
      }
    } catch (error) {
      onError(error);
    } finally {
      setLoading(false);
    }
  }, [api, onError]);

  const loadMore = useCallback(async () => {
    if (!nextCursor || loadingMore.current) return;
    loadingMore.current = true;
    try {
      const page = await api.listChats(nextCursor);
      setChats((loaded) => {
        const known = new Set(loaded.map((chat) => chat.chatId));
        return [...loaded, ...page.chats.filter((chat) => !known.has(chat.chatId))];
      });
      setNextCursor(page.nextCursor);
      pagesLoaded.current += 1;
    } catch (error) {
      onError(error);
    } finally {
      loadingMore.current = false;
    }
  }, [api, nextCursor, onError]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const update = useCallback((chat: ChatSummary) => {
    setChats((loaded) => loaded.map((known) => (known.chatId === chat.chatId ? { ...known, ...chat } : known)));
  }, []);
  const remove = useCallback((chatId: string) => {
    setChats((loaded) => loaded.filter((chat) => chat.chatId !== chatId));
  }, []);

  return { chats, nextCursor, loading, refresh, loadMore, update, remove };
}
