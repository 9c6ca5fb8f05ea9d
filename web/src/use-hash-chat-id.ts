import { useCallback, useEffect, useState } from 'react';
import { newId } from './new-id';

const CHAT_HASH = /^#\/chats\/([A-Za-z0-9_-]{1,128})$/;

const hashOf = (chatId: string) => `#/chats/${chatId}`;

/** The chat named by the page's hash; a page without one gets a new chat (replacing the entry). */
function chatIdInHash(): string {
  const match = CHAT_HASH.exec(window.location.hash);
  if (match) return match[1]!;
  const chatId = newId();
  window.history.replaceState(null, '', hashOf(chatId));
  return chatId;
}

/**
 * The open chat, kept in the URL's hash (`#/chats/<id>`) so that a reload, a bookmark or the
 * back button reopens it. `open(id, { replace })` changes it; `replace` leaves no history entry.
 */
export function useHashChatId() {
  const [chatId, setChatId] = useState(chatIdInHash);
  useEffect(() => {
    const follow = () => setChatId(chatIdInHash());
    window.addEventListener('hashchange', follow);
    return () => window.removeEventListener('hashchange', follow);
  }, []);
  const open = useCallback((next: string, options: { replace?: boolean } = {}) => {
    if (options.replace) window.history.replaceState(null, '', hashOf(next));
    else window.history.pushState(null, '', hashOf(next));
    setChatId(next);
  }, []);
  return { chatId, open, hashOf };
}
