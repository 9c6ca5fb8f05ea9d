import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { abortCauseOf } from '../errors/abort-reasons';
import { AppError } from '../errors/app-error';
import type { Cluster, LocalReplies, ReplyHolder } from './cluster';
import { buildContext, historyWindow, promptTokensWithoutHistory, type Context } from './build-context';
import { Generation } from './generation';
import type { ChatMessage, ChatStore, FinishedReply, LlmEvent, LlmProvider, MessageStatus, RecentHistory, ReplyMetrics, StoredMessage, TokenCounter, TraceContext } from './ports';
import type { ReplyStream } from './reply-stream';
import { generateTitle, titleFromMessage } from './titles';

export interface ChatServiceOptions {
  store: ChatStore;
  /** This server instance, recorded on the replies it opens. */
  instanceId: string;
  provider: LlmProvider;
  counter: TokenCounter;
  maxConversationPairs: number;
  /** The model's context window less the room kept for the reply. */
  maxPromptTokens: number;
  /** Sent as the upstream `max_tokens`. */
  maxReplyTokens: number;
  defaultSystemPrompt: string;
  generateTitles: boolean;
  /** Most turns one owner may run at once; undefined: no limit. */
  maxTurnsPerOwner: number | undefined;
  logContent: boolean;
  idleTimeoutMs: number;
  resumeGraceMs: number;
  checkpointIntervalMs: number;
  /** How long the final save of a reply is retried. */
  replySaveRetryMs: number;
  /** Multi-instance mode: chats, limits and replies shared with the other instances. */
  cluster?: Cluster;
  /** Where replies and upstream failures are counted; undefined: not measured. */
  metrics?: ReplyMetrics;
}

export interface TurnRequest {
  chatId: string;
  /** The API key the turn is made with; a chat belongs to the key that created it. */
  ownerId: string;
  /** The messages to store (a system message sets the chat's prompt), with the ids their client gave them, if any. */
  messages: Array<ChatMessage & { clientId?: string }>;
  /** Changes to the chat's messages first: an edit of a user message, or a regeneration (no new message then). */
  rewind?: { type: 'edit'; messageId: string; content: string } | { type: 'regenerate'; messageId: string | undefined };
  /** The client's trace context, passed on to the upstream request. */
  traceContext?: TraceContext;
}

interface PreparedTurn {
  /** The system prompt in force for this turn. */
  systemPrompt: string;
  /** The system prompt the request carried, which becomes the chat's. */
  requestPrompt: string | undefined;
  /** The chat's title if it has none yet. */
  title: string;
  history: StoredMessage[];
  /** The messages after the history: the turn's new ones, or the stored user message a rewound chat ends with. */
  newMessages: ChatMessage[];
  newTokenCounts: number[];
  /** Stored messages before the turn's, less any counted in `newMessages`. */
  storedCount: number;
}

/** Runs chat turns: builds each turn's context, persists it, and keeps its generation. */
export class ChatService implements LocalReplies {
  /** Chats (by `chatKey`) from the start of a turn until its reply is stored: one turn at a time per chat. */
  private readonly busyChats = new Set<string>();
  /** How many turns each owner is running. */
  private readonly turnsByOwner = new Map<string, number>();
  /** Turns accepted but not yet streaming (or failed): shutdown waits for them too. */
  private readonly settingUp = new Set<Promise<unknown>>();
  /** The generation of each busy chat (by `chatKey`), once its context is built. */
  private readonly generations = new Map<string, Generation>();
  /** Multi-instance mode: each busy chat's claim, given back once its reply is stored. */
  private readonly claims = new Map<string, () => void>();
  private accepting = true;
  /** Set once shutdown stops what is left: a generation created after that is stopped at once. */
  private stopping = false;

  constructor(private readonly options: ChatServiceOptions) {}

  /**
   * Persists the new turn, opens the upstream stream and returns the running generation.
   * Aborting `clientSignal` before the stream opens gives up the turn.
   * @throws AppError: generation_in_progress, context_too_long, service_unavailable, or an upstream error.
   */
  async startTurn(request: TurnRequest, clientSignal: AbortSignal, log: Logger): Promise<Generation> {
    const { ownerId } = request;
    const key = chatKey(ownerId, request.chatId);
    if (!this.accepting) throw new AppError('service_unavailable', 'The service is shutting down.');
    if (this.busyChats.has(key)) {
      if (this.generations.get(key)?.isEnded) {
        // Its reply has ended but waits to be stored (the database is locked): not a new reply.
        throw new AppError('service_unavailable', 'The previous reply of this chat is still being saved; retry shortly.', {
          retryAfterSeconds: 1,
        });
      }
      throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
    }
    const running = this.turnsByOwner.get(ownerId) ?? 0;
    const { maxTurnsPerOwner, cluster } = this.options;
    // In multi-instance mode the claim counts the turns of every instance.
    if (!cluster && maxTurnsPerOwner !== undefined && running >= maxTurnsPerOwner) throw tooManyTurns(maxTurnsPerOwner);
    // Claimed before the first await, so that a concurrent turn on this chat sees it.
    this.busyChats.add(key);
    this.countTurn(ownerId, 1);
    const setup = this.setUpTurn(request, clientSignal, log);
    this.settingUp.add(setup);
    return setup.finally(() => this.settingUp.delete(setup));
  }

  private async setUpTurn(request: TurnRequest, clientSignal: AbortSignal, log: Logger): Promise<Generation> {
    const { chatId, ownerId } = request;
    const key = chatKey(ownerId, chatId);
    const startedAt = Date.now();
    let replyOpened = false;
    try {
      const generation = this.createGeneration(request, startedAt, log);
      this.generations.set(key, generation);
      if (this.stopping) generation.abort('shutdown');
      if (this.options.cluster) await this.claim(this.options.cluster, request, generation.messageId);
      const turn = await this.openTurn(request, generation.messageId);
      replyOpened = true;
      const context = this.plan(turn, this.options.maxConversationPairs);
      generation.describeContext(describeContext(context, turn));
      const events = await this.openStream(generation, { ...turn, traceContext: request.traceContext }, context, clientSignal, log);
      void generation.run(events).finally(() => this.release(request));
      if (this.options.generateTitles && turn.storedCount === 0) this.titleAfterReply(generation, request, turn, log);
      return generation;
    } catch (error) {
      const generation = this.generations.get(key);
      if (generation && !generation.isEnded) {
        // The chat stays busy until the failed reply's row (if it was opened) is stored.
        void generation.endUnstarted(replyOpened ? failedBeforeStart(generation) : undefined).finally(() => this.release(request));
      } else {
        this.release(request);
      }
      throw error;
    }
  }

  /**
   * Claims the chat and a turn slot across every instance, before anything is written. The
   * database's own check (one streaming reply per chat) stays behind it, as the fence for a claim
   * that lapsed while its holder stalled.
   * @throws AppError generation_in_progress, rate_limited, service_unavailable (Redis unreachable).
   */
  private async claim(cluster: Cluster, request: TurnRequest, messageId: string): Promise<void> {
    const { ownerId, chatId } = request;
    const claim = await cluster.claimTurn({ ownerId, chatId, messageId, maxTurns: this.options.maxTurnsPerOwner });
    if (claim.outcome === 'busy') throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
    if (claim.outcome === 'limited') throw tooManyTurns(this.options.maxTurnsPerOwner!);
    this.claims.set(chatKey(ownerId, chatId), claim.release);
  }

  private release({ chatId, ownerId }: TurnRequest): void {
    const key = chatKey(ownerId, chatId);
    this.claims.get(key)?.();
    this.claims.delete(key);
    this.busyChats.delete(key);
    this.generations.delete(key);
    this.countTurn(ownerId, -1);
  }

  private countTurn(ownerId: string, change: 1 | -1): void {
    const running = (this.turnsByOwner.get(ownerId) ?? 0) + change;
    if (running > 0) this.turnsByOwner.set(ownerId, running);
    else this.turnsByOwner.delete(ownerId);
  }

  /**
   * Stores the turn and reads the history before it, in one call to the store: on a database
   * server, one round trip between the request and the upstream request instead of two. A turn
   * whose system prompt and new messages cannot fit the context window is refused before anything
   * is written, although the chat's prompt is only known once read: the store writes only under a
   * bound on the prompt's UTF-8 bytes that guarantees a fit (the tokenizers are byte-level BPE,
   * so a text never has more tokens than bytes). A longer prompt (rare) costs a second call, made
   * only once the exact count says it fits.
   * @throws AppError context_too_long (nothing written), generation_in_progress.
   */
  private async openTurn(request: TurnRequest, replyId: string): Promise<PreparedTurn> {
    const { store, counter, maxPromptTokens, defaultSystemPrompt } = this.options;
    const { rewind } = request;
    const toStore = request.messages.filter((message) => message.role !== 'system');
    // What goes upstream is role and content only (not the client's ids).
    const newMessages: ChatMessage[] = toStore.map(({ role, content }) => ({ role, content }));
    // The latest system message of the request becomes the chat's prompt.
    const requestPrompt = request.messages.findLast((message) => message.role === 'system')?.content;
    const newTokenCounts = newMessages.map((message) => counter.count(message.content));
    // An edited message is not stored anew, but it is the turn's question: its size is known now.
    const edited = rewind?.type === 'edit' ? { role: 'user' as const, content: rewind.content, tokenCount: counter.count(rewind.content) } : undefined;
    const asked = edited ? [edited] : newMessages;
    const askedCounts = edited ? [edited.tokenCount] : newTokenCounts;
    const firstAsked = asked.find((message) => message.role === 'user') ?? asked[0];
    // A regeneration stores no message, and its chat exists: the title is never used.
    const title = firstAsked ? titleFromMessage(firstAsked.content) : '';
    const turn = (before: RecentHistory | null): PreparedTurn => {
      const history = before?.messages ?? [];
      const prepared = {
        systemPrompt: requestPrompt ?? before?.systemPrompt ?? defaultSystemPrompt,
        requestPrompt,
        title,
        history,
        newMessages,
        newTokenCounts,
        storedCount: before?.messageCount ?? 0,
      };
      // A rewound chat ends with the stored question the reply answers: it is the turn's question,
      // never dropped from the context as old history would be.
      const question = before && rewind ? history.at(-1) : undefined;
      if (question?.role !== 'user') return before ? prepared : { ...prepared, newMessages: asked, newTokenCounts: askedCounts };
      return {
        ...prepared,
        history: history.slice(0, -1),
        newMessages: [{ role: question.role, content: question.content }],
        newTokenCounts: [question.tokenCount ?? counter.count(question.content)],
        storedCount: prepared.storedCount - 1,
      };
    };
    // What the system prompt's content may use: the budget less everything else of a prompt with no history.
    const promptRoom = maxPromptTokens - promptTokensWithoutHistory({ systemPrompt: '', newMessages: asked, newTokenCounts: askedCounts, counter }, 0);
    // A prompt in the request is known now: checked exactly before anything is written.
    if (requestPrompt !== undefined) this.plan(turn(null), 0);
    const opening = {
      chatId: request.chatId,
      ownerId: request.ownerId,
      systemPrompt: requestPrompt,
      title,
      messages: toStore.map((message, index) => ({ ...message, tokenCount: newTokenCounts[index]! })),
      reply: { id: replyId, model: this.options.provider.model, instanceId: this.options.instanceId },
      defaultPrompt: defaultSystemPrompt,
      historyLimit: historyWindow(this.options.maxConversationPairs),
      rewind: !rewind ? undefined : rewind.type === 'edit' ? { ...rewind, tokenCount: edited!.tokenCount } : rewind,
    };
    const first = await store.openTurn({ ...opening, maxPromptBytes: requestPrompt === undefined ? promptRoom : null });
    if (first.stored) return turn(first.before);
    // The chat's prompt is long: count it, and store the turn only if it fits.
    this.plan(turn(first.before), 0);
    const second = await store.openTurn({ ...opening, maxPromptBytes: null });
    return turn(second.before);
  }

  private plan(turn: PreparedTurn, maxPairs: number): Context {
    return buildContext({ ...turn, maxPairs, maxPromptTokens: this.options.maxPromptTokens, counter: this.options.counter });
  }

  /** The turn's generation, before its context is known (described once it is). */
  private createGeneration(request: TurnRequest, startedAt: number, log: Logger): Generation {
    const messageId = randomUUID();
    return new Generation({
      chatId: request.chatId,
      messageId,
      store: this.options.store,
      log: log.child({ messageId }),
      idleTimeoutMs: this.options.idleTimeoutMs,
      graceMs: this.options.resumeGraceMs,
      checkpointIntervalMs: this.options.checkpointIntervalMs,
      replySaveRetryMs: this.options.replySaveRetryMs,
      model: this.options.provider.model,
      startedAt,
      counter: this.options.counter,
      metrics: this.options.metrics,
      // Replaced once the turn's history is read.
      context: { contextMessages: 0, droppedMessages: 0, promptTokensEstimate: 0 },
    });
  }

  /**
   * Opens the upstream stream. If the model still finds the context too long, the oldest half of
   * the history is dropped and the request sent once more: no token has reached the client yet.
   */
  private async openStream(
    generation: Generation,
    turn: PreparedTurn & { traceContext?: TraceContext },
    context: Context,
    clientSignal: AbortSignal,
    log: Logger,
  ): Promise<AsyncIterable<LlmEvent>> {
    const { traceContext } = turn;
    // Until the stream opens no response is attached, so a client leaving stops the turn.
    const giveUp = () => generation.abort('client_disconnected');
    clientSignal.addEventListener('abort', giveUp, { once: true });
    try {
      let current = context;
      for (let attempt = 1; ; attempt += 1) {
        this.logContext(current, log);
        try {
          return await this.options.provider.openStream({
            messages: current.messages,
            signal: generation.signal,
            maxTokens: this.options.maxReplyTokens,
            ...(traceContext && { traceContext }),
          });
        } catch (error) {
          if (error instanceof AppError && !generation.signal.aborted) this.options.metrics?.upstreamFailed(error.code);
          const overflow = error instanceof AppError && error.code === 'context_length_exceeded';
          if (!overflow || attempt > 1 || current.pairs === 0) throw error;
          current = this.plan(turn, Math.floor(current.pairs / 2));
          generation.describeContext(describeContext(current, turn));
          log.warn({ pairs: current.pairs }, 'the model found the context too long: retrying with less history');
        }
      }
    } catch (error) {
      // Stopped on purpose while opening: `run` records why, with no events.
      if (abortCauseOf(generation.signal)) return noEvents();
      throw error;
    } finally {
      clientSignal.removeEventListener('abort', giveUp);
    }
  }

  private titleAfterReply(generation: Generation, request: TurnRequest, turn: PreparedTurn, log: Logger): void {
    const question = turn.newMessages.find((message) => message.role === 'user')?.content;
    if (!question) return;
    // Only the reply's text goes on to the title request: a closure that outlived the reply here
    // would keep the generation, and all its parts, for as long as the model takes to answer.
    void generation.finished.then(() => {
      if (generation.status === 'completed') void this.saveTitle(request, question, generation.content, log);
    });
  }

  private async saveTitle({ chatId, ownerId }: TurnRequest, question: string, reply: string, log: Logger): Promise<void> {
    try {
      const title = await generateTitle(this.options.provider, question, reply, AbortSignal.timeout(30_000));
      if (title) await this.options.store.setGeneratedTitle(chatId, ownerId, title);
    } catch (error) {
      log.warn({ err: error }, 'could not generate a title');
    }
  }

  /**
   * Counts a stateless completion (the OpenAI-compatible endpoint: no chat, nothing stored) as one
   * of the owner's turns, against `maxTurnsPerOwner` on every instance, until the returned release.
   * @throws AppError rate_limited, service_unavailable (shutting down, or Redis unreachable).
   */
  async holdTurn(ownerId: string): Promise<() => void> {
    const { maxTurnsPerOwner, cluster } = this.options;
    if (!this.accepting) throw new AppError('service_unavailable', 'The service is shutting down.');
    if (maxTurnsPerOwner === undefined) return () => undefined;
    if (cluster) {
      const release = await cluster.takeTurnSlot(ownerId, maxTurnsPerOwner);
      if (!release) throw tooManyTurns(maxTurnsPerOwner);
      return release;
    }
    if ((this.turnsByOwner.get(ownerId) ?? 0) >= maxTurnsPerOwner) throw tooManyTurns(maxTurnsPerOwner);
    this.countTurn(ownerId, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.countTurn(ownerId, -1);
    };
  }

  /** Replies this instance is generating: from the start of their turn until they are stored. */
  get generationCount(): number {
    return this.generations.size;
  }

  /** The owner's chat's running generation on this instance, if its parts are flowing. */
  activeGeneration(chatId: string, ownerId: string): Generation | undefined {
    const generation = this.generations.get(chatKey(ownerId, chatId));
    return generation?.isStarted ? generation : undefined;
  }

  /** For the cluster: the owner's chat's generation here, if it is `messageId`. */
  find(ownerId: string, chatId: string, messageId: string): Generation | undefined {
    const generation = this.generations.get(chatKey(ownerId, chatId));
    return generation?.messageId === messageId ? generation : undefined;
  }

  /**
   * The owner's chat's reply whose parts are flowing, on this instance or (multi-instance mode)
   * followed from the one generating it.
   * @throws AppError service_unavailable when the other instances cannot be reached.
   */
  async activeReply(chatId: string, ownerId: string): Promise<ReplyStream | undefined> {
    const local = this.activeGeneration(chatId, ownerId);
    if (local) return local;
    const remote = await this.remoteHolder(chatId, ownerId);
    return remote && remote.cluster.follow(ownerId, chatId, remote.holder);
  }

  /**
   * Stops the chat's generation, wherever it runs, and waits until its partial reply is stored.
   * @returns the reply's id and final status, or undefined when nothing was generating.
   * @throws AppError service_unavailable when the other instances cannot be reached.
   */
  async cancel(chatId: string, ownerId: string): Promise<{ messageId: string; status: MessageStatus } | undefined> {
    const generation = this.generations.get(chatKey(ownerId, chatId));
    if (generation && !generation.isEnded) {
      generation.abort('cancelled');
      await generation.finished;
      return { messageId: generation.messageId, status: generation.status };
    }
    const remote = generation ? undefined : await this.remoteHolder(chatId, ownerId);
    if (!remote) return undefined;
    const status = await remote.cluster.cancel(ownerId, chatId, remote.holder);
    return status === undefined ? undefined : { messageId: remote.holder.messageId, status };
  }

  /** Multi-instance mode: the reply holding the owner's chat, when another instance generates it. */
  private async remoteHolder(chatId: string, ownerId: string): Promise<{ cluster: Cluster; holder: ReplyHolder } | undefined> {
    const { cluster } = this.options;
    const holder = cluster && (await cluster.holderOf(ownerId, chatId));
    return cluster && holder && holder.instanceId !== cluster.instanceId ? { cluster, holder } : undefined;
  }

  /**
   * Refuses new turns, gives the running ones `graceMs` to finish, then stops the rest
   * (stored as interrupted). Resolves when every reply is stored.
   */
  async shutdown(graceMs = 0): Promise<void> {
    this.accepting = false;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    const allDone = async () => {
      await Promise.allSettled([...this.settingUp]);
      await Promise.all([...this.generations.values()].map((generation) => generation.finished));
    };
    await Promise.race([allDone(), graceOver]);
    clearTimeout(timer);
    this.stopping = true;
    for (const generation of this.generations.values()) generation.abort('shutdown');
    await allDone();
  }

  private logContext(context: Context, log: Logger): void {
    if (!log.isLevelEnabled('debug')) return;
    const messages = context.messages.map((message) =>
      this.options.logContent
        ? { role: message.role, length: message.content.length, content: message.content }
        : { role: message.role, length: message.content.length },
    );
    log.debug({ context: { count: messages.length, promptTokens: context.promptTokens, messages } }, 'upstream context');
  }
}

function describeContext(context: Context, turn: PreparedTurn) {
  return {
    contextMessages: context.messages.length,
    droppedMessages: turn.storedCount - context.historyMessages,
    promptTokensEstimate: context.promptTokens,
  };
}

/** The record of a reply whose request failed before streaming: nothing was generated or billed. */
function failedBeforeStart(generation: Generation): FinishedReply {
  return {
    content: '',
    status: 'failed',
    finishReason: 'error',
    usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    usageEstimated: true,
    tokenCount: 0,
    timeToFirstTokenMs: null,
    durationMs: Date.now() - generation.startedAt,
  };
}

function tooManyTurns(maxTurns: number): AppError {
  return new AppError('rate_limited', `At most ${maxTurns} replies may stream at once for this API key.`, { retryAfterSeconds: 1 });
}

/** Chat ids are a namespace per owner: a chat is known by both. */
function chatKey(ownerId: string, chatId: string): string {
  return `${ownerId} ${chatId}`;
}

async function* noEvents(): AsyncGenerator<LlmEvent> {}
