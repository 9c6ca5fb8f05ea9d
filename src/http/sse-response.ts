import type { Response } from 'express';
import type { Logger } from 'pino';
import type { ReplyStream } from '../chat/reply-stream';
import type { StreamEntry } from '../chat/ui-message-part';
import { startSlowReaderDeadline } from './slow-reader-deadline';

/** Headers of every UI message stream response. */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  // no-transform keeps proxies from compressing or buffering the stream.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  'x-vercel-ai-ui-message-stream': 'v1',
} as const;

/** An SSE comment: clients ignore it, proxies and load balancers see the connection is alive. */
const HEARTBEAT = ': ping\n\n';

/**
 * One SSE frame. JSON.stringify escapes CR and LF, so a part can never break out of its
 * `data:` line, whatever text the model sent.
 */
export function formatFrame(entry: StreamEntry): string {
  const data = entry.part.type === 'done' ? '[DONE]' : JSON.stringify(entry.part);
  return `id: ${entry.id}\ndata: ${data}\n\n`;
}

export interface StreamOptions {
  /** Send only the parts after this id (the `Last-Event-ID` of a resuming client). */
  lastEventId: number;
  /** Send a heartbeat comment after this long without any other frame. */
  heartbeatMs: number;
  /** Once the reply has ended, how long the client has to take the rest before it is disconnected. */
  slowReaderMs: number;
  log: Logger;
  /** Where open event streams are counted (the metrics); undefined: not counted. */
  readers?: StreamReaders;
}

/** A count of the event streams open to clients. */
export interface StreamReaders {
  readerOpened(): void;
  readerClosed(): void;
}

/**
 * Counts `response` among the open event streams until it closes (ended, or its client gone). A
 * response whose client left while its reply was being set up is not counted: its 'close' may
 * have been emitted already, and would never take it off again.
 */
export function countReader(response: Response, readers: StreamReaders | undefined): void {
  if (!readers || response.destroyed) return;
  readers.readerOpened();
  response.once('close', () => readers.readerClosed());
}

/**
 * Sends `generation`'s parts after `lastEventId` to `response`, then follows it live until it
 * ends. Writes wait while the client is slow, so it holds back only its own copy of the stream;
 * once the reply has ended, a client still behind after `slowReaderMs` is disconnected.
 * A response that closes early unsubscribes; the generation decides what that means.
 */
export function streamGeneration(generation: ReplyStream, response: Response, options: StreamOptions): void {
  response.writeHead(200, SSE_HEADERS);
  countReader(response, options.readers);
  let cursor = options.lastEventId;
  let waitingForClient = false;
  let written = false;
  let deadlineStarted = false;
  // Writes made and writes handed to the socket: when they are equal, nothing of ours is buffered.
  let writes = 0;
  let flushedWrites = 0;

  const resume = () => {
    if (!waitingForClient) return;
    waitingForClient = false;
    response.off('drain', resume);
    pump();
  };
  // 'drain' alone is not enough: Node 24.22+ and 26.9+ can skip it when the socket empties while
  // the response still counts the bytes it just passed on (nodejs/node#62936), which would leave a
  // slow client waiting forever. The callback of the write that filled the buffer is never skipped.
  const onFlushed = () => {
    flushedWrites += 1;
    if (flushedWrites === writes) resume();
  };
  const write = (chunk: string) => {
    written = true;
    heartbeat.refresh();
    writes += 1;
    if (response.write(chunk, onFlushed)) return;
    waitingForClient = true;
    response.on('drain', resume);
  };
  const heartbeat = setInterval(() => {
    if (!waitingForClient) write(HEARTBEAT);
  }, options.heartbeatMs);

  const pump = () => {
    if (response.writableEnded || response.destroyed) return;
    // The deadline runs from the end of the reply: from then on only its readers keep the
    // generation and its parts in memory. While the reply runs, writes just wait for a slow reader.
    if (generation.isEnded && !deadlineStarted) {
      deadlineStarted = true;
      startSlowReaderDeadline(response, { timeoutMs: options.slowReaderMs, chatId: generation.chatId, log: options.log });
    }
    if (waitingForClient) return;
    const entries = generation.entriesAfter(cursor);
    if (entries.length > 0) {
      let chunk = '';
      for (const entry of entries) chunk += formatFrame(entry);
      cursor = entries[entries.length - 1]!.id;
      write(chunk);
      if (waitingForClient) return;
    }
    if (generation.isEnded) {
      stop();
      response.end();
    }
  };

  const unsubscribe = generation.subscribe(pump);
  const stop = () => {
    clearInterval(heartbeat);
    unsubscribe();
  };
  response.on('close', stop);
  if (response.destroyed) {
    stop();
    return;
  }
  pump();
  // The headers go out at once: with the first frames when there are some (one packet), else alone.
  if (!written) response.flushHeaders();
}
