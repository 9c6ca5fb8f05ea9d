import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { abortCauseOf } from '../errors/abort-reasons';
import { AppError } from '../errors/app-error';
import { historyWindow, selectRecentPairs } from './build-context';
import { Generation } from './generation';
import type { ChatMessage, ChatStore, LlmEvent, LlmProvider, MessageStatus, StoredMessage } from './ports';

export interface ChatServiceOptions {
  store: ChatStore;
  provider: LlmProvider;
  maxConversationPairs: number;
  defaultSystemPrompt: string;
  logContent: boolean;
  idleTimeoutMs: number;
  resumeGraceMs: number;
  checkpointIntervalMs: number;
}

export interface TurnRequest {
  chatId: string;
  messages: ChatMessage[];
}

/** Runs chat turns: builds each turn's context, persists it, and keeps its generation. */
export class ChatService {
  /** The generation of each chat from the start of a turn until its reply is stored: one at a time. */
  private readonly generations = new Map<string, Generation>();
  private accepting = true;

  constructor(private readonly options: ChatServiceOptions) {}

  /**
   * Persists the new turn, opens the upstream stream and returns the running generation.
   * Aborting `clientSignal` before the stream opens gives up the turn.
   * @throws AppError: generation_in_progress, service_unavailable, or an upstream error.
   */
  async startTurn(request: TurnRequest, clientSignal: AbortSignal, log: Logger): Promise<Generation> {
    const { chatId } = request;
    if (!this.accepting) throw new AppError('service_unavailable', 'The service is shutting down.');
    if (this.generations.has(chatId)) {
      throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
    }
    const messageId = randomUUID();
    const generation = new Generation({
      chatId,
      messageId,
      store: this.options.store,
      log: log.child({ messageId }),
      idleTimeoutMs: this.options.idleTimeoutMs,
      graceMs: this.options.resumeGraceMs,
      checkpointIntervalMs: this.options.checkpointIntervalMs,
    });
    // Claimed before the first await, so that a concurrent turn on this chat sees it.
    this.generations.set(chatId, generation);
    try {
      const events = await this.openTurn(request, generation, clientSignal, log);
      void generation.run(events).finally(() => this.generations.delete(chatId));
      return generation;
    } catch (error) {
      this.generations.delete(chatId);
      if (!generation.isEnded) generation.endUnstarted('failed');
      throw error;
    }
  }

  private async openTurn(request: TurnRequest, generation: Generation, clientSignal: AbortSignal, log: Logger): Promise<AsyncIterable<LlmEvent>> {
    const { store, provider } = this.options;
    const { chatId } = request;
    // The latest system message of the request becomes the chat's prompt.
    const systemPrompt = request.messages.findLast((message) => message.role === 'system')?.content;
    const newMessages = request.messages.filter((message) => message.role !== 'system');

    const stored = await store.loadRecent(chatId, historyWindow(this.options.maxConversationPairs));
    const context: ChatMessage[] = [
      { role: 'system', content: systemPrompt ?? stored?.systemPrompt ?? this.options.defaultSystemPrompt },
      ...selectRecentPairs(stored?.messages ?? [], this.options.maxConversationPairs),
      ...newMessages,
    ];
    this.logContext(context, log);
    await store.beginTurn({ chatId, systemPrompt, messages: newMessages, assistantMessageId: generation.messageId });

    // Until the stream opens no response is attached, so a client leaving stops the turn.
    const giveUp = () => generation.abort('client_disconnected');
    clientSignal.addEventListener('abort', giveUp, { once: true });
    try {
      return await provider.openStream({ messages: context, signal: generation.signal });
    } catch (error) {
      // Stopped on purpose while opening: `run` records why, with no events.
      if (abortCauseOf(generation.signal)) return noEvents();
      await store.finishReply(generation.messageId, { content: '', status: 'failed', finishReason: 'error', usage: null });
      throw error;
    } finally {
      clientSignal.removeEventListener('abort', giveUp);
    }
  }

  /** The chat's running generation, if its parts are flowing. */
  activeGeneration(chatId: string): Generation | undefined {
    const generation = this.generations.get(chatId);
    return generation?.isStarted ? generation : undefined;
  }

  /**
   * Stops the chat's generation and waits until its partial reply is stored.
   * @returns the reply's id and final status, or undefined when nothing was generating.
   */
  async cancel(chatId: string): Promise<{ messageId: string; status: MessageStatus } | undefined> {
    const generation = this.generations.get(chatId);
    if (!generation || generation.isEnded) return undefined;
    generation.abort('cancelled');
    await generation.finished;
    return { messageId: generation.messageId, status: generation.status };
  }

  /** The chat's messages, oldest first. @throws AppError chat_not_found */
  async listMessages(chatId: string): Promise<StoredMessage[]> {
    const messages = await this.options.store.listMessages(chatId);
    if (!messages) throw new AppError('chat_not_found', 'No chat has this id.');
    return messages;
  }

  /**
   * Refuses new turns, gives the running ones `graceMs` to finish, then stops the rest
   * (stored as interrupted). Resolves when every reply is stored.
   */
  async shutdown(graceMs = 0): Promise<void> {
    this.accepting = false;
    const running = [...this.generations.values()].map((generation) => generation.finished);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.all(running), graceOver]);
    clearTimeout(timer);
    for (const generation of this.generations.values()) generation.abort('shutdown');
    await Promise.all([...this.generations.values()].map((generation) => generation.finished));
  }

  private logContext(context: ChatMessage[], log: Logger): void {
    if (!log.isLevelEnabled('debug')) return;
    const messages = context.map((message) =>
      this.options.logContent
        ? { role: message.role, length: message.content.length, content: message.content }
        : { role: message.role, length: message.content.length },
    );
    log.debug({ context: { count: context.length, messages } }, 'upstream context');
  }
}

async function* noEvents(): AsyncGenerator<LlmEvent> {}
