import { useCallback, useEffect, useState } from 'react';
import { ApiError } from './api-error';
import { authorizedFetch } from './api-client';
import { describeError } from './describe-error';
import { KeyForm } from './key-form';
import { forgetKey, storedKey, storeKey } from './key-storage';
import { Workspace } from './workspace';

type Access =
  | { kind: 'checking' }
  | { kind: 'key-needed'; problem?: string }
  | { kind: 'unreachable'; problem: string }
  | { kind: 'ready'; key: string | null };

/** Whether the service lets this key (or no key: auth off) in. Other failures throw. */
async function admits(key: string | null): Promise<boolean> {
  try {
    await authorizedFetch(key)('/api/chats?limit=1');
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

/** The page: a key first when the service asks for one, then the chats. */
export function App() {
  const [access, setAccess] = useState<Access>({ kind: 'checking' });

  const start = useCallback(async () => {
    setAccess({ kind: 'checking' });
    const saved = storedKey();
    try {
      if (await admits(saved)) setAccess({ kind: 'ready', key: saved });
      else setAccess({ kind: 'key-needed', problem: saved ? 'The saved API key was refused. Enter a valid key.' : undefined });
    } catch (error) {
      setAccess({ kind: 'unreachable', problem: describeError(error) });
    }
  }, []);
  useEffect(() => void start(), [start]);

  const submitKey = async (key: string, remember: boolean) => {
    try {
      if (!(await admits(key))) return setAccess({ kind: 'key-needed', problem: 'This API key was refused: check it and try again.' });
      storeKey(key, remember);
      setAccess({ kind: 'ready', key });
    } catch (error) {
      setAccess({ kind: 'key-needed', problem: describeError(error) });
    }
  };
  const changeKey = useCallback(() => {
    forgetKey();
    setAccess({ kind: 'key-needed' });
  }, []);

  switch (access.kind) {
    case 'checking':
      return <p className="center" role="status">Connecting…</p>;
    case 'unreachable':
      return (
        <main className="center">
          <div className="error" role="alert" data-testid="error">
            <p>{access.problem}</p>
            <button type="button" onClick={() => void start()}>
              Try again
            </button>
          </div>
        </main>
      );
    case 'key-needed':
      return <KeyForm problem={access.problem} onSubmit={submitKey} />;
    case 'ready':
      return <Workspace key={access.key ?? ''} apiKey={access.key} onChangeKey={changeKey} />;
  }
}
