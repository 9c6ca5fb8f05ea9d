import { useState, type FormEvent } from 'react';
import { ErrorBanner } from './error-banner';

/** Asks for the API key; `remember` keeps it in this browser, otherwise it lasts for the tab. */
export function KeyForm({ problem, onSubmit }: { problem?: string; onSubmit: (key: string, remember: boolean) => Promise<void> }) {
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [checking, setChecking] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!key.trim() || checking) return;
    setChecking(true);
    try {
      await onSubmit(key.trim(), remember);
    } finally {
      setChecking(false);
    }
  };
  return (
    <main className="key-page">
      <form className="key-form" onSubmit={submit} aria-busy={checking}>
        <h1>Chat</h1>
        <p>This service needs an API key.</p>
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          data-testid="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          autoFocus
          value={key}
          onChange={(event) => setKey(event.target.value)}
        />
        <label className="checkbox">
          <input data-testid="remember-key" type="checkbox" checked={remember} onChange={(event) => setRemember(event.target.checked)} />
          Remember the key on this device
        </label>
        {problem && <ErrorBanner error={problem} />}
        <button type="submit" disabled={checking}>
          {checking ? 'Checking…' : 'Continue'}
        </button>
      </form>
    </main>
  );
}
