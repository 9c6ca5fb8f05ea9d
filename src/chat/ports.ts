/**
 * What the chat service needs from the outside, implemented by `llm/` (model providers) and
 * `store/` (persistence). The chat layer owns these types so dependencies point one way.
 */

export type Role = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: Role;
  content: string;
}

/**
 * A reply is `streaming`, then `completed`, `cancelled` (stopped by a user), `interrupted` (no
 * client left, shutdown or crash) or `failed` (upstream error or timeout). User messages are `completed`.
 */
export type MessageStatus = 'streaming' | 'completed' | 'cancelled' | 'interrupted' | 'failed';

export type FinalStatus = Exclude<MessageStatus, 'streaming'>;

/** How the model ended its reply, in the AI SDK's vocabulary. */
export type FinishReason = 'stop' | 'length' | 'content-filter' | 'tool-calls' | 'error' | 'other';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface StoredMessage {
  id: string;
  role: Role;
  content: string;
  status: MessageStatus;
  finishReason: FinishReason | null;
  createdAt: Date;
}

export interface ChatStore {
  /** The chat's stored system prompt and its newest `limit` messages, oldest first; null if unknown. */
  loadRecent(chatId: string, limit: number): Promise<{ systemPrompt: string | null; messages: StoredMessage[] } | null>;
  /** Creates the chat if new, stores the prompt and the new messages, and opens the assistant reply as `streaming`, in one transaction. */
  beginTurn(turn: {
    chatId: string;
    systemPrompt: string | undefined;
    messages: ChatMessage[];
    assistantMessageId: string;
  }): Promise<void>;
  /** Saves the text of a reply that is still streaming (a checkpoint); a finished reply is left alone. */
  saveProgress(messageId: string, content: string): Promise<void>;
  /** Records how a reply ended. */
  finishReply(
    messageId: string,
    reply: { content: string; status: FinalStatus; finishReason: FinishReason | null; usage: Usage | null },
  ): Promise<void>;
  /** Marks replies left `streaming` by a process that died as `interrupted`; returns how many. */
  interruptAbandonedReplies(): Promise<number>;
  /** Every message of a chat, oldest first; null if the chat does not exist. */
  listMessages(chatId: string): Promise<StoredMessage[] | null>;
  /** Resolves when the database answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** One event of a model's streamed reply. */
export type LlmEvent =
  | { type: 'text'; text: string }
  | { type: 'finish'; finishReason: FinishReason }
  | { type: 'usage'; usage: Usage };

export interface LlmRequest {
  messages: ChatMessage[];
  signal: AbortSignal;
}

export interface LlmProvider {
  /** Shown by /healthz: `azure-openai`, `openai` or `simulator`. */
  readonly name: string;
  readonly model: string;
  /**
   * Sends the request, retrying before any token as configured, and resolves once the upstream
   * has accepted it. The events end when the reply ends or `signal` aborts.
   * @throws AppError (upstream_rate_limited, upstream_error, upstream_timeout, context_length_exceeded, content_filtered).
   */
  openStream(request: LlmRequest): Promise<AsyncIterable<LlmEvent>>;
}
