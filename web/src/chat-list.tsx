import { useEffect, useRef } from 'react';
import type { ChatSummary } from './api-client';

const STATUS_NOTE: Record<string, string> = { streaming: 'replying', failed: 'failed', interrupted: 'interrupted', cancelled: 'stopped' };

interface Props {
  chats: ChatSummary[];
  openChatId: string;
  loading: boolean;
  hasMore: boolean;
  onLoadMore: () => void;
}

/** The chats, newest activity first; the next page loads when the end of the list scrolls into view. */
export function ChatList({ chats, openChatId, loading, hasMore, onLoadMore }: Props) {
  const end = useRef<HTMLLIElement>(null);
  useEffect(() => {
    const element = end.current;
    if (!element || !hasMore) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) onLoadMore();
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [hasMore, onLoadMore]);

  return (
    <ul className="chat-list" data-testid="chat-list">
      {chats.map((chat) => {
        const note = chat.lastReplyStatus ? STATUS_NOTE[chat.lastReplyStatus] : undefined;
        return (
          <li key={chat.chatId}>
            <a
              href={`#/chats/${chat.chatId}`}
              data-testid="chat-item"
              aria-current={chat.chatId === openChatId ? 'page' : undefined}
            >
              <span className="chat-title">{chat.title || 'Untitled chat'}</span>
              {note && <span className="chat-note">{note}</span>}
            </a>
          </li>
        );
      })}
      {loading && <li className="list-note">Loading…</li>}
      {!loading && chats.length === 0 && <li className="list-note">No chats yet.</li>}
      {hasMore && (
        <li ref={end}>
          <button type="button" className="quiet load-more" onClick={onLoadMore}>
            Load more chats
          </button>
        </li>
      )}
    </ul>
  );
}
