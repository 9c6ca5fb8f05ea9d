import type { Response } from 'express';
import type { Logger } from 'pino';

export interface SlowReaderDeadline {
  timeoutMs: number;
  chatId: string;
  log: Logger;
}

/**
 * Gives the reader of a reply that has ended `timeoutMs` to take the rest of it: a response that
 * has not finished by then (every byte handed to the kernel) has its connection reset, and is
 * logged. Without it, a client that stops reading keeps its connection, the reply's parts and the
 * bytes queued for it for as long as it likes. Call it once the reply has ended; it is a no-op
 * for a response that has already finished or closed.
 */
/**
 * Drops a client that does not read. A reset rather than a FIN: a FIN waits behind the unread
 * bytes in the kernel's send buffer, so the connection, and that buffer, would last as long as the
 * client kept not reading. The socket is plain TCP: TLS, if any, ends in front of the service.
 */
export function resetConnection(response: Response): void {
  if (response.socket) response.socket.resetAndDestroy();
  else response.destroy();
}

export function startSlowReaderDeadline(response: Response, deadline: SlowReaderDeadline): void {
  if (response.writableFinished || response.destroyed) return;
  const { timeoutMs, chatId, log } = deadline;
  const timer = setTimeout(() => {
    log.warn({ chatId, slowReaderTimeoutSeconds: timeoutMs / 1000 }, 'slow reader disconnected: the reply had ended and it had not taken the rest');
    resetConnection(response);
  }, timeoutMs);
  // 'finish' alone is not enough: a response whose client went away closes without finishing.
  const clear = () => clearTimeout(timer);
  response.once('finish', clear).once('close', clear);
}
