import type { Response } from 'express';
import type { Logger } from 'pino';
import type { LlmEvent, Usage } from '../chat/ports';
import { toAppError } from '../errors/app-error';
import { completionChunk, usageChunk, type CompletionIdentity } from './openai-chunks';
import { openAiError } from './openai-errors';
import { resetConnection } from './slow-reader-deadline';
import { countReader, SSE_HEADERS, type StreamReaders } from './sse-response';

/** Headers of a streamed completion: those of every event stream here, less the UI-message-stream one (this is OpenAI's stream). */
const { 'x-vercel-ai-ui-message-stream': _uiMessageStream, ...OPENAI_SSE_HEADERS } = SSE_HEADERS;

export interface CompletionStreamOptions {
  identity: CompletionIdentity;
  includeUsage: boolean;
  /** How long a write may wait for a client that takes nothing before it is disconnected. */
  slowReaderMs: number;
  log: Logger;
  /** Where open event streams are counted; undefined: not counted. */
  readers?: StreamReaders;
}

/**
 * Writes `events` to `response` as OpenAI streams a chat completion: `data: {chunk}` frames (a
 * first one with the role, one per text delta, one with the finish reason, then the usage when
 * asked), then `data: [DONE]`. Events are pulled only as fast as the client takes the frames, so
 * a slow client slows its own upstream request. A failure after the headers is sent as OpenAI
 * does, as a `data: {"error": …}` frame (its SDK throws it as an APIError), with no [DONE].
 */
export async function streamCompletion(events: AsyncIterable<LlmEvent>, response: Response, options: CompletionStreamOptions): Promise<void> {
  const { identity, includeUsage, slowReaderMs, log } = options;
  const send = (data: unknown) => writeFrame(response, `data: ${JSON.stringify(data)}\n\n`, slowReaderMs, log);
  response.writeHead(200, OPENAI_SSE_HEADERS);
  countReader(response, options.readers);
  let usage: Usage | null = null;
  try {
    if (!(await send(completionChunk(identity, { delta: { role: 'assistant', content: '' }, finishReason: null }, includeUsage)))) return;
    for await (const event of events) {
      let sent = true;
      if (event.type === 'text') sent = await send(completionChunk(identity, { delta: { content: event.text }, finishReason: null }, includeUsage));
      else if (event.type === 'finish') sent = await send(completionChunk(identity, { delta: {}, finishReason: event.finishReason }, includeUsage));
      else usage = event.usage;
      // Leaving the loop cancels the upstream request.
      if (!sent) return;
    }
  } catch (error) {
    const appError = toAppError(error);
    log.warn({ err: error, code: appError.code, cause: appError.cause }, 'completion failed after its stream started');
    if (await send(openAiError(appError))) response.end();
    return;
  }
  // The client went away: the events ended quietly, and there is no one to tell.
  if (response.destroyed) return;
  if (includeUsage && usage && !(await send(usageChunk(identity, usage)))) return;
  if (await writeFrame(response, 'data: [DONE]\n\n', slowReaderMs, log)) response.end();
}

/**
 * Writes one frame; when the client is slow, waits until it has taken it. False once the response
 * is gone, or when the client took nothing for `slowReaderMs` (its connection is then reset).
 */
function writeFrame(response: Response, frame: string, slowReaderMs: number, log: Logger): Promise<boolean> | boolean {
  if (response.destroyed || response.writableEnded) return false;
  let flushed!: () => void;
  const written = new Promise<void>((resolve) => (flushed = resolve));
  if (response.write(frame, () => flushed())) return true;
  return new Promise<boolean>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      response.off('drain', done).off('close', done);
      resolve(!response.destroyed);
    };
    const timer = setTimeout(() => {
      log.warn({ slowReaderTimeoutSeconds: slowReaderMs / 1000 }, 'slow reader disconnected: it took nothing of the completion stream');
      resetConnection(response);
    }, slowReaderMs);
    // 'drain' alone is not enough: it can be skipped (nodejs/node#62936, see sse-response.ts);
    // the callback of the write that filled the buffer is not.
    response.on('drain', done).on('close', done);
    void written.then(done);
  });
}
