import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { GenerationAbort, abortCauseOf, type AbortCause } from '../errors/abort-reasons';
import { AppError, toAppError } from '../errors/app-error';
import { MemoryPartLog, type PartLog } from './part-log';
import type { ChatStore, FinalStatus, FinishedReply, FinishReason, LlmEvent, MessageStatus, ReplyMetrics, TokenCounter, Usage } from './ports';
import type { ReplyStream } from './reply-stream';
import type { StreamEntry, UiMessagePart } from './ui-message-part';

const TEXT_PART_ID = 'text-0';

export interface GenerationOptions {
  chatId: string;
  messageId: string;
  store: ChatStore;
  log: Logger;
  /** No upstream event for this long fails the reply. */
  idleTimeoutMs: number;
  /** How long the reply goes on with no reader before it is stopped (0: at once). */
  graceMs: number;
  /** How often the partial text is saved. */
  checkpointIntervalMs: number;
  /** How long the final save is retried while the database is locked or failing. */
  replySaveRetryMs: number;
  /** The model or deployment that answers. */
  model: string;
  /** When the turn started (Date.now()), for time to first token and duration. */
  startedAt: number;
  /** Counts the reply's tokens, and estimates usage when the provider sends none. */
  counter: TokenCounter;
  /** What went into the context, sent in the `start` part. */
  context: { contextMessages: number; droppedMessages: number; promptTokensEstimate: number };
  /** Told of the reply once it is stored, and of an upstream failure; undefined: not measured. */
  metrics?: ReplyMetrics;
}

interface ReplyFacts {
  finishReason: FinishReason | null;
  usage: Usage;
  usageEstimated: boolean;
  timeToFirstTokenMs: number | null;
  durationMs: number;
}

interface Outcome {
  status: FinalStatus;
  error?: AppError;
}

/** What each abort cause makes of a reply that had not finished. */
const STATUS_BY_ABORT: Record<AbortCause, FinalStatus> = {
  cancelled: 'cancelled',
  client_disconnected: 'interrupted',
  shutdown: 'interrupted',
  upstream_idle_timeout: 'failed',
};

/**
 * One assistant reply being generated. It outlives any single HTTP response: responses
 * subscribe to it and read its parts at their own pace, and may leave and come back.
 */
export class Generation implements ReplyStream {
  readonly chatId: string;
  readonly messageId: string;
  status: MessageStatus = 'streaming';
  /** Resolves once the last part is appended and the reply stored (or given up on, after the retries). */
  readonly finished: Promise<void>;

  private readonly parts: PartLog = new MemoryPartLog();
  private readonly listeners = new Set<() => void>();
  private readonly controller = new AbortController();
  private resolveFinished!: () => void;
  private started = false;
  private ended = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private text = '';
  private firstTokenAt: number | undefined;
  private savedLength = 0;
  private pendingCheckpoint: Promise<void> | undefined;
  /** A checkpoint failed and has not succeeded since: later failures are not logged again. */
  private checkpointFailing = false;

  constructor(private options: GenerationOptions) {
    this.chatId = options.chatId;
    this.messageId = options.messageId;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  /** Aborts the upstream request; `run` then ends the reply according to the cause. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once parts flow: a response can attach. */
  get isStarted(): boolean {
    return this.started && !this.ended;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The reply's text so far. */
  get content(): string {
    return this.text;
  }

  /** When the turn started (Date.now()). */
  get startedAt(): number {
    return this.options.startedAt;
  }

  /** Replaces the context description sent in the `start` part (before `run`). */
  describeContext(context: GenerationOptions['context']): void {
    this.options.context = context;
  }

  abort(cause: AbortCause): void {
    if (!this.controller.signal.aborted) this.controller.abort(new GenerationAbort(cause));
  }

  entriesAfter(lastId: number): StreamEntry[] {
    return this.parts.after(lastId);
  }

  /** The id of the last part so far (0 before the first). */
  get lastId(): number {
    return this.parts.lastId;
  }

  /**
   * Calls `listener` after each new part; the returned function unsubscribes. When the last
   * subscriber leaves, the reply goes on for the grace period, waiting for one to come back.
   */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    clearTimeout(this.graceTimer);
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0 || this.ended) return;
      if (this.options.graceMs === 0) {
        this.abort('client_disconnected');
      } else {
        this.graceTimer = setTimeout(() => this.abort('client_disconnected'), this.options.graceMs);
      }
    };
  }

  /**
   * For a generation whose upstream request failed before streaming: nothing to run. Stores
   * `reply` if given (the reply's row was opened), retrying as `run` does.
   */
  async endUnstarted(reply: FinishedReply | undefined): Promise<void> {
    this.status = 'failed';
    this.ended = true;
    const failed = reply && (await this.trySave(reply));
    if (failed) await this.saveWithRetries(reply, failed.error);
    // A turn refused before its reply's row was opened (busy chat, too long…) had no reply.
    if (reply) this.measure(reply, null);
    this.resolveFinished();
  }

  /**
   * Streams `events` into parts until the upstream ends, fails, goes idle or is aborted, saving
   * checkpoints on the way, then persists the reply and appends the closing parts. Never throws.
   */
  async run(events: AsyncIterable<LlmEvent>): Promise<void> {
    this.started = true;
    this.append({ type: 'start', messageId: this.messageId, messageMetadata: this.options.context });
    this.append({ type: 'text-start', id: TEXT_PART_ID });
    let finishReason: FinishReason | null = null;
    let usage: Usage | null = null;
    let failure: AppError | null = null;
    const idleTimer = setTimeout(() => this.abort('upstream_idle_timeout'), this.options.idleTimeoutMs);
    const checkpointTimer = setInterval(() => this.checkpoint(), this.options.checkpointIntervalMs);
    try {
      for await (const event of events) {
        idleTimer.refresh();
        if (event.type === 'text') {
          this.firstTokenAt ??= Date.now();
          this.text += event.text;
          this.append({ type: 'text-delta', id: TEXT_PART_ID, delta: event.text });
        } else if (event.type === 'finish') {
          finishReason = event.finishReason;
        } else {
          usage = event.usage;
        }
        if (this.signal.aborted) break;
      }
    } catch (error) {
      failure = toAppError(error);
    } finally {
      clearTimeout(idleTimer);
      clearInterval(checkpointTimer);
      clearTimeout(this.graceTimer);
    }
    const generatingMs = this.firstTokenAt === undefined ? null : Date.now() - this.firstTokenAt;
    const outcome = this.decideOutcome(finishReason, failure);
    const tokenCount = this.options.counter.count(this.text);
    const facts = this.replyFacts(finishReason, usage, tokenCount);
    if (outcome.error) {
      this.options.log.warn({ err: outcome.error, cause: outcome.error.cause }, 'reply failed');
      this.options.metrics?.upstreamFailed(outcome.error.code);
    }
    this.options.log.info({ status: outcome.status, ...facts, characters: this.text.length }, 'reply ended');
    const reply = this.finishedReply(outcome, facts, tokenCount);
    // A checkpoint landing after the final write would overwrite it.
    await this.pendingCheckpoint;
    // Normally the reply is stored before the client sees its end. If the database is locked, the
    // client is not kept waiting for it: the closing parts go out and the saving goes on.
    const failed = await this.trySave(reply);
    this.end(outcome, facts);
    if (failed) await this.saveWithRetries(reply, failed.error);
    this.measure(reply, generatingMs);
    this.resolveFinished();
  }

  /** Reports the reply, once stored (or given up on), to the metrics. */
  private measure(reply: FinishedReply, generatingMs: number | null): void {
    this.options.metrics?.replyEnded({
      model: this.options.model,
      status: reply.status,
      timeToFirstTokenMs: reply.timeToFirstTokenMs,
      durationMs: Date.now() - this.options.startedAt,
      generatingMs,
      usage: reply.usage,
      usageEstimated: reply.usageEstimated,
    });
  }

  /** Usage from the provider, or counted here when the stream was cut before its usage frame. */
  private replyFacts(finishReason: FinishReason | null, usage: Usage | null, completionTokens: number): ReplyFacts {
    const { context, startedAt } = this.options;
    return {
      finishReason,
      usage: usage ?? {
        promptTokens: context.promptTokensEstimate,
        completionTokens,
        totalTokens: context.promptTokensEstimate + completionTokens,
      },
      usageEstimated: usage === null,
      timeToFirstTokenMs: this.firstTokenAt === undefined ? null : this.firstTokenAt - startedAt,
      durationMs: Date.now() - startedAt,
    };
  }

  private decideOutcome(finishReason: FinishReason | null, failure: AppError | null): Outcome {
    // A finish frame means the model's reply is whole, whatever happened to the stream after it.
    if (finishReason) return { status: 'completed' };
    const cause = abortCauseOf(this.signal);
    if (cause === 'upstream_idle_timeout') {
      return { status: 'failed', error: new AppError('upstream_timeout', 'The model provider stopped sending.') };
    }
    if (cause) return { status: STATUS_BY_ABORT[cause] };
    if (failure) return { status: 'failed', error: failure };
    return { status: 'failed', error: new AppError('upstream_error', 'The model provider ended the stream early.') };
  }

  /**
   * Saves the text so far unless nothing changed or a save is still running. One that fails (the
   * database is locked, say) leaves `savedLength` behind, so the next interval tries again.
   */
  private checkpoint(): void {
    if (this.pendingCheckpoint || this.text.length === this.savedLength) return;
    const length = this.text.length;
    this.pendingCheckpoint = this.options.store
      .saveProgress(this.messageId, this.text)
      .then(() => {
        this.savedLength = length;
        this.checkpointFailing = false;
      })
      .catch((error: unknown) => {
        if (!this.checkpointFailing) this.options.log.warn({ err: error }, 'could not save a checkpoint: trying again at the next interval');
        this.checkpointFailing = true;
      })
      .finally(() => {
        this.pendingCheckpoint = undefined;
      });
  }

  private finishedReply(outcome: Outcome, facts: ReplyFacts, tokenCount: number): FinishedReply {
    return {
      ...facts,
      content: this.text,
      status: outcome.status,
      finishReason: facts.finishReason ?? (outcome.status === 'failed' ? 'error' : null),
      tokenCount,
    };
  }

  /** One attempt at the final write: undefined when it is done, else what went wrong. */
  private async trySave(reply: FinishedReply): Promise<{ error: unknown } | undefined> {
    try {
      if (!(await this.options.store.finishReply(this.messageId, reply))) this.options.log.warn('the reply was not stored: its row is gone');
      return undefined;
    } catch (error) {
      return { error };
    }
  }

  /**
   * Retries the final write with backoff for `replySaveRetryMs`, so that a lock or a passing
   * fault does not lose the reply. If it never succeeds, the row keeps its last checkpoint (and
   * is marked interrupted at the next start); the log says what was lost.
   */
  private async saveWithRetries(reply: FinishedReply, firstError: unknown): Promise<void> {
    const { log, replySaveRetryMs } = this.options;
    log.warn({ err: firstError }, 'could not store the reply yet: retrying');
    let lastError = firstError;
    const deadline = Date.now() + replySaveRetryMs;
    for (let pause = 25; Date.now() + pause <= deadline; pause = Math.min(pause * 2, 1000)) {
      await sleep(pause);
      const failed = await this.trySave(reply);
      if (!failed) return;
      lastError = failed.error;
    }
    log.error(
      {
        err: lastError,
        status: reply.status,
        characters: reply.content.length,
        savedCharacters: this.savedLength,
        lostCharacters: reply.content.length - this.savedLength,
        retriedSeconds: replySaveRetryMs / 1000,
      },
      'could not store the reply: its last checkpoint is kept, the rest of its text and its final status are lost',
    );
  }

  private end(outcome: Outcome, facts: ReplyFacts): void {
    this.status = outcome.status;
    this.append({ type: 'text-end', id: TEXT_PART_ID });
    if (outcome.error) {
      this.append({ type: 'error', errorText: outcome.error.message });
    } else if (outcome.status === 'completed') {
      const { finishReason, usage, usageEstimated, timeToFirstTokenMs, durationMs } = facts;
      const messageMetadata = { usage, usageEstimated, model: this.options.model, timeToFirstTokenMs, durationMs };
      this.append(finishReason ? { type: 'finish', finishReason, messageMetadata } : { type: 'finish', messageMetadata });
    } else {
      this.append({ type: 'abort', reason: abortCauseOf(this.signal) });
    }
    this.ended = true;
    this.append({ type: 'done' });
    this.listeners.clear();
    // A reader that left while the reply was being saved started a grace timer, which would
    // otherwise keep this ended generation, and its parts, in memory until it fired.
    clearTimeout(this.graceTimer);
  }

  private append(part: UiMessagePart): void {
    this.parts.append(part);
    for (const listener of this.listeners) listener();
  }
}
