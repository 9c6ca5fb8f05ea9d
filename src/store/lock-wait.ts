import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors/app-error';

const LOCK_CODE = /^SQLITE_(BUSY|LOCKED)/;

/**
 * True for SQLite's answer when another connection holds a lock it needs: from better-sqlite3
 * directly, or through Prisma's adapter, which reports it as a timeout (P1008) and keeps the code.
 */
export function isLockError(error: unknown): boolean {
  const { code, meta } = (error ?? {}) as { code?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  if (typeof code === 'string' && LOCK_CODE.test(code)) return true;
  const originalCode = meta?.driverAdapterError?.cause?.originalCode;
  return typeof originalCode === 'string' && LOCK_CODE.test(originalCode);
}

/**
 * Runs `operation` until it gets past a lock held by another process, for up to `waitMs`.
 *
 * SQLite's own busy timeout would wait inside the call, and better-sqlite3 calls are synchronous:
 * the whole event loop would stop for as long as someone else held the lock (seconds, for a backup
 * or an open `sqlite3` shell). Connections here have no busy timeout, so a locked database fails
 * at once, and the waiting happens here, on timers, while other requests and streams go on.
 * @throws AppError service_unavailable (with Retry-After) when the lock outlasts `waitMs`; any
 *   other error of `operation` at once.
 */
export async function waitForLock<T>(operation: () => T | Promise<T>, waitMs: number): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
    try {
      return await operation();
    } catch (error) {
      if (!isLockError(error)) throw error;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new AppError('service_unavailable', 'The database is locked by another process; retry shortly.', {
          cause: error,
          retryAfterSeconds: 2,
        });
      }
      await sleep(Math.min(pause, remaining));
    }
  }
}
