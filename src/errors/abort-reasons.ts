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
