import { useEffect, useRef, type KeyboardEvent } from 'react';

interface Props {
  value: string;
  onChange: (value: string) => void;
  onSend: () => void;
  onStop: () => void;
  busy: boolean;
}

/** The message box: Enter sends, Shift+Enter starts a new line; Stop while a reply streams. */
export function Composer({ value, onChange, onSend, onStop, busy }: Props) {
  const box = useRef<HTMLTextAreaElement>(null);
  // The Stop button goes when the reply ends: keep the focus in the page, on the box.
  useEffect(() => {
    if (!busy && (document.activeElement === document.body || document.activeElement === null)) box.current?.focus();
  }, [busy]);
  const keys = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    // Not while an input method composes a character (Enter then picks the character).
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      onSend();
    }
  };
  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        onSend();
      }}
    >
      <label htmlFor="message-input" className="sr-only">
        Message
      </label>
      <textarea
        id="message-input"
        ref={box}
        data-testid="message-input"
        rows={1}
        autoFocus
        placeholder="Message"
        aria-describedby="message-hint"
        value={value}
        onChange={(event) => onChange(event.target.value)}
        onKeyDown={keys}
      />
      <p id="message-hint" className="sr-only">
        Enter sends, Shift+Enter starts a new line.
      </p>
      {busy && (
        <button type="button" className="stop" data-testid="stop" onClick={onStop}>
          Stop
        </button>
      )}
      <button type="submit" data-testid="send" disabled={busy || !value.trim()}>
        Send
      </button>
    </form>
  );
}
