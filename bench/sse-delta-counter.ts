import type { TargetKind } from './protocol';

/** A content frame of the upstream: `"delta":{"content":"` (the role frame has `"role"` first, the finish frame `{}`). */
const DIRECT_DELTA = '"delta":{"content":"';
/** A text part of the UI message stream (the service's and the floor's). */
const SERVICE_DELTA = '{"type":"text-delta"';
const DONE = 'data: [DONE]';
const QUOTE = 34;

/**
 * Counts the deltas in an SSE byte stream as it arrives, without parsing JSON: at 1000 streams
 * the load generator sees tens of thousands of chunks a second, and JSON.parse per frame would
 * make it, not the target, the bottleneck.
 *
 * Only whole frames (up to the last blank line) are scanned; the rest waits for the next chunk,
 * so a delta split across chunks counts when it is complete. Markers cannot appear inside a
 * delta's text: JSON escapes every `"` in it.
 */
export class SseDeltaCounter {
  done = false;
  /** The service (or the floor) sent an `error` or `abort` part. */
  failedPart = false;
  private tail = '';
  private readonly marker: string;

  constructor(private readonly kind: TargetKind) {
    this.marker = kind === 'direct' ? DIRECT_DELTA : SERVICE_DELTA;
  }

  /** Takes one socket chunk (latin1 text: only ASCII markers are searched) and returns the deltas it completed. */
  push(chunk: string): number {
    const text = this.tail.length === 0 ? chunk : this.tail + chunk;
    const end = text.lastIndexOf('\n\n');
    if (end === -1) {
      this.tail = text;
      return 0;
    }
    this.tail = end + 2 === text.length ? '' : text.slice(end + 2);
    const { marker } = this;
    let count = 0;
    for (let at = text.indexOf(marker); at !== -1 && at < end; at = text.indexOf(marker, at + marker.length)) {
      // Upstream: only a non-empty `content` is a delta (as the service itself decides).
      if (this.kind !== 'direct' || text.charCodeAt(at + marker.length) !== QUOTE) count++;
    }
    // At a line start only: a delta's text may read `data: [DONE]`, but never holds a raw newline.
    if (!this.done && (text.startsWith(DONE) || text.includes(`\n${DONE}`))) this.done = true;
    if (this.kind !== 'direct' && !this.failedPart && (text.includes('{"type":"error"') || text.includes('{"type":"abort"'))) {
      this.failedPart = true;
    }
    return count;
  }
}
