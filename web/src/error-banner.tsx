import type { ReactNode } from 'react';
import { describeError } from './describe-error';

/** An error in words, with what can be done about it. */
export function ErrorBanner({ error, children, onDismiss }: { error: unknown; children?: ReactNode; onDismiss?: () => void }) {
  return (
    <div className="error" role="alert" data-testid="error">
      <p>{typeof error === 'string' ? error : describeError(error)}</p>
      <div className="error-actions">
        {children}
        {onDismiss && (
          <button type="button" className="quiet" onClick={onDismiss}>
            Dismiss
          </button>
        )}
      </div>
    </div>
  );
}
