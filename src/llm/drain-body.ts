/** How long, and how much, of a body nobody needs is read before it is cancelled. */
export interface DrainLimits {
  timeoutMs: number;
  maxBytes: number;
}

/**
 * Reads the rest of a response body whose content is no longer needed, so that a server that ends
 * it as it should (right after its last event) leaves the keep-alive connection to the next
 * request; cancelling at once would close it. A server that holds the body open or keeps sending
 * costs no more than `limits`: after `timeoutMs`, or past `maxBytes`, the body is cancelled.
 *
 * Resolves once the body has ended or been cancelled. Never rejects and logs nothing (a failed body
 * only means the connection is not reused), and its timer does not keep the process alive.
 */
export async function drainBody(reader: ReadableStreamDefaultReader<Uint8Array>, limits: DrainLimits): Promise<void> {
  // Cancelling ends the pending read with `done`, which ends the loop below.
  const timer = setTimeout(() => void reader.cancel().catch(ignore), limits.timeoutMs);
  timer.unref();
  try {
    for (let bytes = 0; bytes <= limits.maxBytes; ) {
      const { done, value } = await reader.read();
      if (done) return;
      bytes += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The body broke off: there is no connection left to reuse, and nobody waiting on it.
  } finally {
    clearTimeout(timer);
  }
}

function ignore(): void {}
