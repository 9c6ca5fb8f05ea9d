import { useCallback, useEffect, useMemo, useState } from 'react';
import { createApiClient, type ChatSummary } from './api-client';
import { ApiError } from './api-error';
import { ChatList } from './chat-list';
import { ChatPanel } from './chat-panel';
import { ErrorBanner } from './error-banner';
import { newId } from './new-id';
import { useChatList } from './use-chat-list';
import { useHashChatId } from './use-hash-chat-id';

/** The chats of one key (or of everyone, auth off): the list beside the open chat. */
export function Workspace({ apiKey, onChangeKey }: { apiKey: string | null; onChangeKey: () => void }) {
  const api = useMemo(() => createApiClient(apiKey), [apiKey]);
  const { chatId, open } = useHashChatId();
  const [problem, setProblem] = useState<unknown>(null);
  const [listOpen, setListOpen] = useState(false);
  const list = useChatList(api, setProblem);
  const listed = list.chats.find((chat) => chat.chatId === chatId);

  // On a phone the list covers the chat: picking one (or a new one) shows the chat again.
  useEffect(() => setListOpen(false), [chatId]);

  const newChat = () => open(newId());
  const changed = useCallback((chat: ChatSummary) => list.update(chat), [list.update]);
  const deleted = useCallback(
    (id: string) => {
      list.remove(id);
      open(newId(), { replace: true });
    },
    [list.remove, open],
  );

  return (
    <div className="workspace">
      <header className="topbar">
        <button
          type="button"
          className="list-toggle quiet"
          aria-expanded={listOpen}
          aria-controls="chat-sidebar"
          onClick={() => setListOpen((shown) => !shown)}
        >
          Chats
        </button>
        <p className="brand">Chat</p>
        <button type="button" data-testid="new-chat" onClick={newChat}>
          New chat
        </button>
        {apiKey !== null && (
          <button type="button" className="quiet" onClick={onChangeKey}>
            Forget key
          </button>
        )}
      </header>
      {problem !== null && (
        <ErrorBanner error={problem} onDismiss={() => setProblem(null)}>
          {problem instanceof ApiError && problem.status === 401 && (
            <button type="button" onClick={onChangeKey}>
              Enter another key
            </button>
          )}
        </ErrorBanner>
      )}
      <div className="columns">
        <nav
          id="chat-sidebar"
          className={`sidebar${listOpen ? ' open' : ''}`}
          aria-label="Chats"
          onKeyDown={(event) => event.key === 'Escape' && setListOpen(false)}
        >
          <ChatList chats={list.chats} openChatId={chatId} loading={list.loading} hasMore={list.nextCursor !== null} onLoadMore={list.loadMore} />
        </nav>
        <ChatPanel
          key={chatId}
          api={api}
          chatId={chatId}
          listed={listed}
          onChanged={changed}
          onDeleted={deleted}
          onActivity={list.refresh}
          onChangeKey={onChangeKey}
        />
      </div>
    </div>
  );
}
