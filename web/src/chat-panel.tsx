import { useEffect, useState } from 'react';
import { HISTORY_PAGE, type ApiClient, type ChatMessage, type ChatSummary } from './api-client';
import { ApiError } from './api-error';
import { Conversation } from './conversation';
import { ErrorBanner } from './error-banner';

interface Props {
  api: ApiClient;
  chatId: string;
  /** The chat as the list has it; undefined for a chat not in the list (new, or not loaded yet). */
  listed: ChatSummary | undefined;
  onChanged: (chat: ChatSummary) => void;
  onDeleted: (chatId: string) => void;
  onActivity: () => void;
  onChangeKey: () => void;
}

interface Loaded {
  chat: ChatSummary | undefined;
  history: ChatMessage[];
}

/** The open chat: its title and actions, then its conversation once its history is loaded. */
export function ChatPanel({ api, chatId, listed, onChanged, onDeleted, onActivity, onChangeKey }: Props) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [problem, setProblem] = useState<unknown>(null);
  // Bumped to load the chat again (after a dropped connection): a new conversation, resumed.
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let current = true;
    setLoaded(null);
    setProblem(null);
    Promise.all([api.getChat(chatId), api.history(chatId)]).then(
      ([chat, history]) => current && setLoaded({ chat, history }),
      (error: unknown) => current && setProblem(error),
    );
    return () => {
      current = false;
    };
  }, [api, chatId, attempt]);

  const chat = listed ?? loaded?.chat;
  const title = chat?.title || (chat ? 'Untitled chat' : 'New chat');

  const rename = async () => {
    const next = window.prompt('New title for this chat', chat?.title ?? '');
    if (next === null || !next.trim()) return;
    try {
      onChanged(await api.updateChat(chatId, { title: next.trim() }));
    } catch (error) {
      setProblem(error);
    }
  };
  const remove = async () => {
    if (!window.confirm(`Delete “${title}” and all its messages?`)) return;
    try {
      await api.deleteChat(chatId);
      onDeleted(chatId);
    } catch (error) {
      setProblem(error);
    }
  };

  return (
    <main className="chat-panel" aria-labelledby="chat-title">
      <header className="chat-header">
        <h1 id="chat-title">{title}</h1>
        <button type="button" className="quiet" data-testid="rename-chat" disabled={!chat} onClick={() => void rename()}>
          Rename
        </button>
        <button type="button" className="quiet danger" data-testid="delete-chat" disabled={!chat} onClick={() => void remove()}>
          Delete
        </button>
      </header>
      {problem !== null && (
        <ErrorBanner error={problem} onDismiss={loaded ? () => setProblem(null) : undefined}>
          {problem instanceof ApiError && problem.status === 401 ? (
            <button type="button" onClick={onChangeKey}>
              Enter another key
            </button>
          ) : (
            !loaded && (
              <button type="button" onClick={() => setAttempt((count) => count + 1)}>
                Try again
              </button>
            )
          )}
        </ErrorBanner>
      )}
      {loaded ? (
        <Conversation
          key={attempt}
          api={api}
          chatId={chatId}
          history={loaded.history}
          hasOlder={loaded.history.length === HISTORY_PAGE}
          systemPrompt={loaded.chat?.systemPrompt ?? ''}
          listed={listed !== undefined}
          onActivity={onActivity}
          onReload={() => setAttempt((count) => count + 1)}
          onChangeKey={onChangeKey}
        />
      ) : (
        problem === null && <p className="center" role="status">Loading the chat…</p>
      )}
    </main>
  );
}
