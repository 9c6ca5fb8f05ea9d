import type { Readable } from 'node:stream';

/** How long, and how much, of a body nobody needs is read before it is dropped. */
export interface DrainLimits {
  timeoutMs: number;
  maxBytes: number;
}

/**
 * Reads the rest of a response body whose content is no longer needed, so that a server that ends
 * it as it should (right after its last event) leaves the keep-alive connection to the next
 * request; destroying it at once would close the connection. A server that holds the body open or
 * keeps sending costs no more than `limits`: after `timeoutMs`, or past `maxBytes`, the body is
 * destroyed.
 *
 * Resolves once the body has ended or been destroyed. Never rejects and logs nothing (a failed body
 * only means the connection is not reused), and its timer does not keep the process alive.
 */
export function drainBody(body: Readable, limits: DrainLimits): Promise<void> {
  return new Promise((resolve) => {
    if (body.readableEnded || body.destroyed) {
      resolve();
      return;
    }
    let bytes = 0;
    const finish = () => {
      clearTimeout(timer);
      body.off('data', count).off('end', finish).off('close', finish).off('error', finish);
      resolve();
    };
    const drop = () => {
      body.destroy();
      finish();
    };
    const count = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limits.maxBytes) drop();
    };
    const timer = setTimeout(drop, limits.timeoutMs);
    timer.unref();
    // A body that broke off ('error') has no connection left to reuse, and nobody waiting on it.
    body.on('data', count).once('end', finish).once('close', finish).once('error', finish);
    body.resume();
  });
}
