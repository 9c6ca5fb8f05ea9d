import { useState, type FormEvent } from 'react';
import type { ChatMessage } from './api-client';
import { describeError } from './describe-error';

const SYSTEM_ID = 'system-prompt';

/**
 * The chat's messages with its system prompt as their first, system, message (none when empty).
 * useChat sends it with every request, and the service takes it as the chat's prompt: that is how
 * a chat not started yet gets its prompt with its first question.
 */
export function withSystemPrompt(messages: ChatMessage[], prompt: string): ChatMessage[] {
  const rest = messages.filter((message) => message.role !== 'system');
  return prompt ? [{ id: SYSTEM_ID, role: 'system', parts: [{ type: 'text', text: prompt }] }, ...rest] : rest;
}

/** The chat's system prompt, editable; saved with the button, or when the field is left. */
export function SystemPrompt({ initial, onSave }: { initial: string; onSave: (prompt: string) => Promise<void> }) {
  const [saved, setSaved] = useState(initial);
  const [draft, setDraft] = useState(initial);
  const [note, setNote] = useState('');
  const dirty = draft.trim() !== saved;

  const save = async (event?: FormEvent) => {
    event?.preventDefault();
    if (!dirty) return;
    const prompt = draft.trim();
    setNote('Saving…');
    try {
      await onSave(prompt);
      setSaved(prompt);
      setNote(prompt ? 'System prompt saved.' : 'System prompt cleared: the default applies.');
    } catch (error) {
      setNote(`Not saved. ${describeError(error)}`);
    }
  };

  return (
    <form className="system-prompt" onSubmit={save}>
      <label htmlFor="system-prompt">System prompt</label>
      <textarea
        id="system-prompt"
        data-testid="system-prompt"
        rows={1}
        placeholder="The service's default"
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
        onBlur={() => void save()}
      />
      <button type="submit" className="quiet small" disabled={!dirty}>
        Save
      </button>
      <p className="note" role="status">
        {note}
      </p>
    </form>
  );
}
