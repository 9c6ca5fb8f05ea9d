import type { Logger } from 'pino';
import { GenerationAbort, abortCauseOf, type AbortCause } from '../errors/abort-reasons';
import { AppError, toAppError } from '../errors/app-error';
import type { ChatStore, FinishReason, LlmEvent, MessageStatus, Usage } from './ports';
import type { StreamEntry, UiMessagePart } from './ui-message-part';

const TEXT_PART_ID = 'text-0';

export interface GenerationOptions {
  chatId: string;
  messageId: string;
  store: ChatStore;
  log: Logger;
  /** No upstream event for this long fails the reply. */
  idleTimeoutMs: number;
  /** Called when the last subscriber leaves before the reply ended. */
  onAbandoned: (generation: Generation) => void;
}

/**
 * One assistant reply being generated. It outlives any single HTTP response: responses
 * subscribe to it and read its parts (kept in order, with ids) at their own pace.
 */
export class Generation {
  readonly chatId: string;
  readonly messageId: string;
  status: MessageStatus = 'streaming';
  /** Resolves once the reply is persisted and the last part is appended. */
  readonly finished: Promise<void>;

  private readonly entries: StreamEntry[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly controller = new AbortController();
  private resolveFinished!: () => void;
  private ended = false;

  constructor(private readonly options: GenerationOptions) {
    this.chatId = options.chatId;
    this.messageId = options.messageId;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  /** Aborts the upstream request; `run` then ends the reply according to `cause`. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  abort(cause: AbortCause): void {
    if (!this.controller.signal.aborted) this.controller.abort(new GenerationAbort(cause));
  }

  /** Parts with an id above `lastId`, in order. */
  entriesAfter(lastId: number): StreamEntry[] {
    return this.entries.slice(Math.max(0, lastId));
  }

  /** Calls `listener` after each new part; the returned function unsubscribes. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      if (!this.listeners.delete(listener)) return;
      if (this.listeners.size === 0 && !this.ended) this.options.onAbandoned(this);
    };
  }

  /**
   * Streams `events` into parts until the upstream ends, fails, goes idle or is aborted, then
   * persists the reply and appends the closing parts. Never throws.
   */
  async run(events: AsyncIterable<LlmEvent>): Promise<void> {
    this.append({ type: 'start', messageId: this.messageId });
    this.append({ type: 'text-start', id: TEXT_PART_ID });
    let content = '';
    let finishReason: FinishReason | null = null;
    let usage: Usage | null = null;
    let failure: AppError | null = null;
    const idle = new IdleTimer(this.options.idleTimeoutMs, () => this.abort('upstream_idle_timeout'));
    try {
      for await (const event of events) {
        idle.reset();
        if (event.type === 'text') {
          content += event.text;
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
      idle.stop();
    }
    const outcome = this.decideOutcome(finishReason, failure);
    await this.persist(content, outcome, finishReason, usage);
    this.end(outcome, finishReason, usage);
  }

  private decideOutcome(finishReason: FinishReason | null, failure: AppError | null): { status: Exclude<MessageStatus, 'streaming'>; error?: AppError } {
    // A finish frame means the model's reply is whole, whatever happened to the stream after it.
    if (finishReason) return { status: 'completed' };
    const cause = abortCauseOf(this.signal);
    if (cause === 'upstream_idle_timeout') {
      return { status: 'failed', error: new AppError('upstream_timeout', 'The model provider stopped sending.') };
    }
    if (cause) return { status: 'interrupted' };
    if (failure) return { status: 'failed', error: failure };
    return { status: 'failed', error: new AppError('upstream_error', 'The model provider ended the stream early.') };
  }

  private async persist(
    content: string,
    outcome: { status: Exclude<MessageStatus, 'streaming'>; error?: AppError },
    finishReason: FinishReason | null,
    usage: Usage | null,
  ): Promise<void> {
    const { log } = this.options;
    if (outcome.error) log.warn({ err: outcome.error, cause: outcome.error.cause }, 'reply failed');
    try {
      await this.options.store.finishReply(this.messageId, {
        content,
        status: outcome.status,
        finishReason: finishReason ?? (outcome.status === 'failed' ? 'error' : null),
        usage,
      });
    } catch (error) {
      log.error({ err: error }, 'could not persist the reply');
      outcome.status = 'failed';
      outcome.error ??= new AppError('internal_error', 'The reply could not be saved.');
    }
    log.info({ status: outcome.status, finishReason, usage, characters: content.length }, 'reply ended');
  }

  private end(outcome: { status: Exclude<MessageStatus, 'streaming'>; error?: AppError }, finishReason: FinishReason | null, usage: Usage | null): void {
    this.status = outcome.status;
    this.append({ type: 'text-end', id: TEXT_PART_ID });
    if (outcome.error) {
      this.append({ type: 'error', errorText: outcome.error.message });
    } else if (outcome.status === 'completed') {
      const finish: UiMessagePart = { type: 'finish' };
      if (finishReason) finish.finishReason = finishReason;
      if (usage) finish.messageMetadata = { usage };
      this.append(finish);
    } else {
      this.append({ type: 'abort', reason: abortCauseOf(this.signal) });
    }
    this.ended = true;
    this.append({ type: 'done' });
    this.listeners.clear();
    this.resolveFinished();
  }

  private append(part: UiMessagePart): void {
    this.entries.push({ id: this.entries.length + 1, part });
    for (const listener of this.listeners) listener();
  }
}

/** Calls `onIdle` when `reset` has not been called for `timeoutMs`. */
class IdleTimer {
  private timer: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number, private readonly onIdle: () => void) {
    this.timer = setTimeout(onIdle, timeoutMs);
  }

  reset(): void {
    this.timer.refresh();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
