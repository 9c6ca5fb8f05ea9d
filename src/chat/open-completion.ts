import type { Logger } from 'pino';
import { AppError, toAppError } from '../errors/app-error';
import type { ChatMessage, FinishReason, LlmEvent, LlmProvider, ReplyMetrics, Sampling, TraceContext, Usage } from './ports';

export interface CompletionRequest {
  /** The whole conversation, as the caller sent it: nothing is added from, or kept in, the store. */
  messages: ChatMessage[];
  maxTokens: number;
  /** Undefined: the provider's configured temperature. */
  temperature?: number;
  sampling?: Sampling;
  /** Aborting it (the client went away) aborts the upstream request; the events then end quietly. */
  signal: AbortSignal;
  log: Logger;
  /** The client's trace context, passed on to the upstream request. */
  traceContext?: TraceContext;
}

export interface CompletionOptions {
  /** No upstream event for this long fails the completion with upstream_timeout. */
  idleTimeoutMs: number;
  /** Where the completion and its upstream failures are counted; undefined: not measured. */
  metrics?: ReplyMetrics;
}

type CompletionStatus = 'completed' | 'failed' | 'client_disconnected';

/**
 * A completion that nothing stores, for the OpenAI-compatible endpoint: the caller holds the
 * conversation, the service only adds what sits in front of the model (its retries and timeouts,
 * through `provider`, and the idle timeout here). Resolves once the upstream has accepted the request.
 *
 * The events end after the reply's finish (and usage). Iterating them throws AppError
 * upstream_timeout when the upstream sends nothing for `idleTimeoutMs`, upstream_error when it
 * ends without a finish, or the provider's error; once `request.signal` aborts they end quietly.
 * One line is logged at info when they end, with the usage, as a chat reply logs "reply ended".
 * @throws AppError as LlmProvider.openStream.
 */
export async function openCompletion(provider: LlmProvider, request: CompletionRequest, options: CompletionOptions): Promise<AsyncIterable<LlmEvent>> {
  const startedAt = Date.now();
  const idle = new AbortController();
  const signal = AbortSignal.any([request.signal, idle.signal]);
  const { messages, maxTokens, temperature, sampling, traceContext } = request;
  let events: AsyncIterable<LlmEvent>;
  try {
    events = await provider.openStream({
      messages,
      signal,
      maxTokens,
      ...(temperature === undefined ? {} : { temperature }),
      ...(sampling && Object.keys(sampling).length > 0 ? { sampling } : {}),
      ...(traceContext && { traceContext }),
    });
  } catch (error) {
    // The client left while the upstream was being asked: the abort is why it failed, not the upstream.
    if (request.signal.aborted) {
      logEnd(request.log, { status: 'client_disconnected', startedAt }, options.metrics, provider.model);
      return noEvents();
    }
    // invalid_request: refused here, before anything was sent (a setting the model does not take).
    // (The error handler logs the failure.)
    if (error instanceof AppError && error.code !== 'invalid_request') {
      options.metrics?.upstreamFailed(error.code);
      countEnd({ status: 'failed', startedAt }, Date.now() - startedAt, options.metrics, provider.model);
    }
    throw error;
  }
  return followEvents(events, { request, idle, idleTimeoutMs: options.idleTimeoutMs, startedAt, metrics: options.metrics, model: provider.model });
}

interface Following {
  request: CompletionRequest;
  idle: AbortController;
  idleTimeoutMs: number;
  startedAt: number;
  metrics: ReplyMetrics | undefined;
  model: string;
}

async function* followEvents(events: AsyncIterable<LlmEvent>, following: Following): AsyncGenerator<LlmEvent> {
  const { request, idle, idleTimeoutMs, startedAt, metrics, model } = following;
  const iterator = events[Symbol.asyncIterator]();
  let finishReason: FinishReason | null = null;
  let usage: Usage | null = null;
  let firstTokenAt: number | undefined;
  let characters = 0;
  let failure: AppError | undefined;
  let ended = false;
  try {
    for (;;) {
      // The idle timer runs only while waiting for the upstream, not while a slow client is
      // taking the previous event: that wait has its own deadline in the HTTP layer.
      const timer = setTimeout(() => idle.abort(), idleTimeoutMs);
      let next: IteratorResult<LlmEvent>;
      try {
        next = await iterator.next();
      } finally {
        clearTimeout(timer);
      }
      if (next.done) break;
      const event = next.value;
      if (event.type === 'text') {
        firstTokenAt ??= Date.now();
        characters += event.text.length;
      } else if (event.type === 'finish') {
        finishReason = event.finishReason;
      } else {
        usage = event.usage;
      }
      yield event;
    }
    ended = true;
    // A finish frame means the reply is whole, whatever happened to the stream after it.
    if (finishReason || request.signal.aborted) return;
    throw idle.signal.aborted
      ? new AppError('upstream_timeout', 'The model provider stopped sending.')
      : new AppError('upstream_error', 'The model provider ended the stream early.');
  } catch (error) {
    failure = toAppError(error);
    metrics?.upstreamFailed(failure.code);
    throw failure;
  } finally {
    const generatingMs = firstTokenAt === undefined ? null : Date.now() - firstTokenAt;
    // Left early by the caller (its client went away): the upstream's reader is cancelled.
    if (!ended) await iterator.return?.();
    const status: CompletionStatus = finishReason ? 'completed' : failure ? 'failed' : 'client_disconnected';
    const timeToFirstTokenMs = firstTokenAt === undefined ? null : firstTokenAt - startedAt;
    logEnd(request.log, { status, startedAt, finishReason, usage, timeToFirstTokenMs, generatingMs, characters, failure }, metrics, model);
  }
}

interface CompletionEnd {
  status: CompletionStatus;
  startedAt: number;
  finishReason?: FinishReason | null;
  /** Null when the provider sent none (a stream cut short, or a server that does not send it). */
  usage?: Usage | null;
  timeToFirstTokenMs?: number | null;
  generatingMs?: number | null;
  characters?: number;
  failure?: AppError;
}

/** Logs the end of a completion, and counts it. */
function logEnd(log: Logger, end: CompletionEnd, metrics: ReplyMetrics | undefined, model: string): void {
  const { startedAt, failure, generatingMs: _generatingMs, ...facts } = end;
  const errorFacts = failure ? { code: failure.code, reason: failure.message } : {};
  const durationMs = Date.now() - startedAt;
  log.info({ ...facts, ...errorFacts, durationMs }, 'completion ended');
  countEnd(end, durationMs, metrics, model);
}

/** Counts a completion as a reply: one whose client left is `interrupted`, as a chat reply would be. */
function countEnd(end: CompletionEnd, durationMs: number, metrics: ReplyMetrics | undefined, model: string): void {
  metrics?.replyEnded({
    model,
    status: end.status === 'client_disconnected' ? 'interrupted' : end.status,
    timeToFirstTokenMs: end.timeToFirstTokenMs ?? null,
    durationMs,
    generatingMs: end.generatingMs ?? null,
    usage: end.usage ?? null,
    usageEstimated: false,
  });
}

async function* noEvents(): AsyncGenerator<LlmEvent> {}
