/**
 * Why a generation's upstream request was aborted. The SDK can end a stream quietly when its
 * signal aborts, so the outcome of a reply is decided from this reason, never from the loop ending.
 */
export type AbortCause = 'client_disconnected' | 'upstream_idle_timeout' | 'shutdown' | 'cancelled';

export class GenerationAbort extends Error {
  constructor(readonly kind: AbortCause) {
    super(`generation aborted: ${kind}`);
    this.name = 'GenerationAbort';
  }
}

export function abortCauseOf(signal: AbortSignal): AbortCause | undefined {
  return signal.aborted && signal.reason instanceof GenerationAbort ? signal.reason.kind : undefined;
}

/**
 * The reason of every "the client's response closed" signal: one shared value, because
 * `abort()` without a reason makes a DOMException, whose stack trace costs more than the rest
 * of closing a response. Nothing reads it: those signals only say that the client is gone.
 */
export const CLIENT_GONE: unknown = Object.freeze({ reason: 'the client closed the response' });
