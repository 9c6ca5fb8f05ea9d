import { useChat } from '@ai-sdk/react';
import { useEffect, useMemo, useRef, useState } from 'react';
import { HISTORY_PAGE, type ApiClient, type ChatMessage } from './api-client';
import { ApiError, NOTHING_STORED } from './api-error';
import { Composer } from './composer';
import { ErrorBanner } from './error-banner';
import { MessageItem } from './message-item';
import { newId } from './new-id';
import { ObservedTransport } from './observed-transport';
import { isReplyStatus, statusAfterStream, statusOf, type ReplyStatus } from './reply-status';
import { SystemPrompt, withSystemPrompt } from './system-prompt';
import { useStickToBottom } from './use-stick-to-bottom';

interface Props {
  api: ApiClient;
  chatId: string;
  history: ChatMessage[];
  hasOlder: boolean;
  systemPrompt: string;
  /** Whether the chat list has this chat already. */
  listed: boolean;
  onActivity: () => void;
  onReload: () => void;
  onChangeKey: () => void;
}

/**
 * One chat with useChat: the history loaded for it, replies streamed in (and resumed after a
 * reload), stop, regenerate and edit, and what went wrong in words.
 */
export function Conversation({ api, chatId, history, hasOlder, systemPrompt, listed, onActivity, onReload, onChangeKey }: Props) {
  const [ended, setEnded] = useState<Record<string, ReplyStatus>>({});
  const [problem, setProblem] = useState<unknown>(null);
  const [input, setInput] = useState('');
  const [olderLeft, setOlderLeft] = useState(hasOlder);
  const abortReason = useRef<string | null | undefined>(undefined);
  // The question of the request in flight, to give it back when the service refused it.
  const unsent = useRef<{ id: string; text: string } | null>(null);
  const transport = useMemo(
    () => new ObservedTransport({ api: '/api/chat', fetch: api.fetch as typeof fetch }, (reason) => (abortReason.current = reason ?? null)),
    [api],
  );
  const [initialMessages] = useState(history);

  const { messages, sendMessage, regenerate, stop, status, error, clearError, setMessages, resumeStream } = useChat<ChatMessage>({
    id: chatId,
    messages: initialMessages,
    transport,
    resume: true,
    onFinish: ({ message, isAbort, isDisconnect, isError, finishReason }) => {
      const outcome = statusAfterStream({ message, abortReason: abortReason.current, isAbort, isDisconnect, isError, finishReason });
      abortReason.current = undefined;
      setEnded((known) => ({ ...known, [message.id]: outcome }));
      onActivity();
    },
    onError: (failure) => {
      if (!(failure instanceof ApiError && NOTHING_STORED.has(failure.code))) return;
      const follow = failure.code === 'generation_in_progress';
      // Following the other reply clears useChat's error: the refusal stays shown as ours.
      if (follow) setProblem(failure);
      void resync(follow);
    },
  });

  /**
   * After a refusal that stored nothing: the service's copy again, and the question back in the
   * box; when another tab or app is generating a reply here, that reply, followed live.
   */
  const resync = async (follow: boolean) => {
    const pending = unsent.current;
    unsent.current = null;
    try {
      const stored = await api.history(chatId);
      setMessages((current) => [...current.filter((message) => message.role === 'system'), ...stored]);
      if (pending && !stored.some((message) => message.id === pending.id)) setInput((typed) => typed || pending.text);
      if (follow) await resumeStream();
    } catch {
      // The refusal is shown already; the copy here stays as it is.
    }
  };

  const busy = status === 'submitted' || status === 'streaming';
  const last = messages.at(-1);
  const visible = messages.filter((message) => message.role !== 'system');

  // A new chat shows in the list as soon as its first reply starts.
  useEffect(() => {
    if (status === 'streaming' && !listed) onActivity();
  }, [status, listed, onActivity]);

  const scroller = useStickToBottom<HTMLDivElement>(messages);

  const send = () => {
    const text = input.trim();
    if (!text || busy) return;
    setProblem(null);
    setInput('');
    // The page names the message, to know after a refusal whether the service kept it.
    const id = newId();
    unsent.current = { id, text };
    void sendMessage({ id, role: 'user', parts: [{ type: 'text', text }] });
  };
  const cancel = async () => {
    await stop();
    try {
      const result = await api.cancelReply(chatId);
      const outcome = result?.status;
      if (result && isReplyStatus(outcome)) setEnded((known) => ({ ...known, [result.messageId]: outcome }));
    } catch (failure) {
      setProblem(failure);
    }
  };
  const again = () => {
    setProblem(null);
    unsent.current = null;
    void regenerate();
  };
  const edit = (messageId: string, text: string) => {
    setProblem(null);
    unsent.current = null;
    void sendMessage({ text, messageId });
  };
  const saveSystemPrompt = async (text: string) => {
    try {
      await api.updateChat(chatId, { systemPrompt: text || null });
    } catch (failure) {
      // A chat not started yet: its first request carries the prompt (a system message).
      if (!(failure instanceof ApiError && failure.status === 404)) throw failure;
    }
    setMessages((current) => withSystemPrompt(current, text));
  };
  const loadOlder = async () => {
    const first = visible[0];
    try {
      const older = await api.history(chatId, first?.id);
      setOlderLeft(older.length > 0 && older.length >= HISTORY_PAGE);
      setMessages((current) => [...current.filter((message) => message.role === 'system'), ...older, ...current.filter((message) => message.role !== 'system')]);
    } catch (failure) {
      setProblem(failure);
    }
  };

  const shown = error ?? problem;
  return (
    <>
      <SystemPrompt initial={systemPrompt} onSave={saveSystemPrompt} />
      <div className="messages" ref={scroller} role="log" aria-label="Messages" aria-live="polite">
        {olderLeft && (
          <button type="button" className="quiet load-older" onClick={() => void loadOlder()}>
            Show earlier messages
          </button>
        )}
        {visible.length === 0 && !busy && <p className="empty">Ask anything to start this chat.</p>}
        {visible.map((message) => (
          <MessageItem
            key={message.id}
            message={message}
            status={statusOf(message, { streaming: status === 'streaming' && message === last && message.role === 'assistant', ended })}
            canEdit={!busy}
            onEdit={edit}
          />
        ))}
        {status === 'submitted' && (
          <p className="waiting" role="status">
            Waiting for the reply…
          </p>
        )}
        {!busy && visible.length > 0 && (
          <div className="after-messages">
            <button type="button" className="quiet" data-testid="regenerate" onClick={again}>
              Regenerate reply
            </button>
          </div>
        )}
      </div>
      {shown && (
        <ErrorBanner
          error={shown}
          onDismiss={() => {
            clearError();
            setProblem(null);
          }}
        >
          {shown instanceof ApiError && shown.status === 401 && (
            <button type="button" onClick={onChangeKey}>
              Enter another key
            </button>
          )}
          {shown instanceof TypeError && (
            <button type="button" onClick={onReload}>
              Reload the chat
            </button>
          )}
        </ErrorBanner>
      )}
      <Composer value={input} onChange={setInput} onSend={send} onStop={() => void cancel()} busy={busy} />
    </>
  );
}
