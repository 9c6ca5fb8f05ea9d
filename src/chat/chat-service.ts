import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { abortCauseOf } from '../errors/abort-reasons';
import { AppError } from '../errors/app-error';
import { historyWindow, selectRecentPairs } from './build-context';
import { Generation } from './generation';
import type { ChatMessage, ChatStore, LlmProvider, StoredMessage } from './ports';

export interface ChatServiceOptions {
  store: ChatStore;
  provider: LlmProvider;
  maxConversationPairs: number;
  defaultSystemPrompt: string;
  idleTimeoutMs: number;
  logContent: boolean;
}

export interface TurnRequest {
  chatId: string;
  messages: ChatMessage[];
}

/** Runs chat turns: builds each turn's context, persists it, and keeps its generation. */
export class ChatService {
  private readonly generations = new Map<string, Generation>();
  /** Chats between the start of a turn and the end of its reply: one turn at a time per chat. */
  private readonly busyChats = new Set<string>();
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
    if (this.busyChats.has(chatId)) {
      throw new AppError('generation_in_progress', 'This chat is already generating a reply.');
    }
    this.busyChats.add(chatId);
    try {
      return await this.openGeneration(request, clientSignal, log);
    } catch (error) {
      this.busyChats.delete(chatId);
      throw error;
    }
  }

  private async openGeneration(request: TurnRequest, clientSignal: AbortSignal, log: Logger): Promise<Generation> {
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

    const messageId = randomUUID();
    await store.beginTurn({ chatId, systemPrompt, messages: newMessages, assistantMessageId: messageId });
    const generation = new Generation({
      chatId,
      messageId,
      store,
      log: log.child({ messageId }),
      idleTimeoutMs: this.options.idleTimeoutMs,
      // A reply nobody is reading any more is not worth paying for.
      onAbandoned: (abandoned) => abandoned.abort('client_disconnected'),
    });
    const giveUp = () => generation.abort('client_disconnected');
    clientSignal.addEventListener('abort', giveUp, { once: true });
    let events;
    try {
      events = await provider.openStream({ messages: context, signal: generation.signal });
    } catch (error) {
      const interrupted = abortCauseOf(generation.signal) !== undefined;
      await store.finishReply(messageId, {
        content: '',
        status: interrupted ? 'interrupted' : 'failed',
        finishReason: interrupted ? null : 'error',
        usage: null,
      });
      throw error;
    } finally {
      clientSignal.removeEventListener('abort', giveUp);
    }
    this.generations.set(messageId, generation);
    void generation.run(events).finally(() => {
      this.generations.delete(messageId);
      this.busyChats.delete(chatId);
    });
    return generation;
  }

  /** The chat's messages, oldest first. @throws AppError chat_not_found */
  async listMessages(chatId: string): Promise<StoredMessage[]> {
    const messages = await this.options.store.listMessages(chatId);
    if (!messages) throw new AppError('chat_not_found', 'No chat has this id.');
    return messages;
  }

  /** Refuses new turns, aborts the running ones and waits until they are persisted. */
  async shutdown(): Promise<void> {
    this.accepting = false;
    const running = [...this.generations.values()];
    for (const generation of running) generation.abort('shutdown');
    await Promise.all(running.map((generation) => generation.finished));
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
