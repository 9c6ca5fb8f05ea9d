import { useState, type KeyboardEvent } from 'react';
import type { ChatMessage } from './api-client';
import { Markdown } from './markdown';
import { ReplyDetails } from './reply-details';
import type { ReplyStatus } from './reply-status';

const ENDING: Partial<Record<ReplyStatus, string>> = {
  cancelled: 'Cancelled: the reply was stopped.',
  interrupted: 'Interrupted: the reply was cut off before its end.',
  failed: 'Failed: the reply broke off with an error.',
};

const textOf = (message: ChatMessage) => message.parts.map((part) => (part.type === 'text' ? part.text : '')).join('');

interface Props {
  message: ChatMessage;
  status: ReplyStatus | undefined;
  canEdit: boolean;
  onEdit: (messageId: string, text: string) => void;
}

/** One message: the user's as typed, a reply as Markdown with how it ended. */
export function MessageItem({ message, status, canEdit, onEdit }: Props) {
  const text = textOf(message);
  const [draft, setDraft] = useState<string | null>(null);
  const user = message.role === 'user';

  const save = () => {
    if (draft === null || !draft.trim()) return;
    onEdit(message.id, draft.trim());
    setDraft(null);
  };
  const keys = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Escape') setDraft(null);
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      save();
    }
  };

  return (
    <article
      className={`message ${message.role}`}
      data-role={message.role}
      data-status={status}
      aria-label={user ? 'You' : 'Assistant'}
      aria-busy={status === 'streaming' || undefined}
    >
      {user && draft !== null ? (
        <form
          className="edit-form"
          onSubmit={(event) => {
            event.preventDefault();
            save();
          }}
        >
          <label htmlFor={`edit-${message.id}`} className="sr-only">
            Edit your message
          </label>
          <textarea id={`edit-${message.id}`} data-testid="edit-input" value={draft} autoFocus onChange={(event) => setDraft(event.target.value)} onKeyDown={keys} />
          <div className="row">
            <button type="submit" data-testid="save-edit" disabled={!canEdit || !draft.trim()}>
              Send edited message
            </button>
            <button type="button" className="quiet" onClick={() => setDraft(null)}>
              Cancel
            </button>
          </div>
        </form>
      ) : user ? (
        <p className="user-text">{text}</p>
      ) : text ? (
        <Markdown text={text} />
      ) : (
        status === 'streaming' && <p className="pending">Writing…</p>
      )}
      {status && ENDING[status] && <p className={`ending ${status}`}>{ENDING[status]}</p>}
      {user && draft === null && (
        <button type="button" className="quiet small" data-testid="edit-message" aria-label="Edit message" disabled={!canEdit} onClick={() => setDraft(text)}>
          Edit
        </button>
      )}
      {!user && status !== 'streaming' && <ReplyDetails metadata={message.metadata} status={status} />}
    </article>
  );
}
