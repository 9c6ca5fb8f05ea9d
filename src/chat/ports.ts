import type { ErrorCode } from '../errors/app-error';

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
  /** Tokens of `content` in a context; null for rows stored before it was counted. */
  tokenCount: number | null;
  promptTokens: number | null;
  completionTokens: number | null;
  totalTokens: number | null;
  usageEstimated: boolean;
  model: string | null;
  timeToFirstTokenMs: number | null;
  durationMs: number | null;
  systemPromptHash: string | null;
}

export type TitleSource = 'auto' | 'model' | 'user';

export interface ChatSummary {
  chatId: string;
  title: string | null;
  systemPrompt: string | null;
  createdAt: Date;
  updatedAt: Date;
  messageCount: number;
  /** Status of the newest assistant reply, null before the first one. */
  lastReplyStatus: MessageStatus | null;
}

/** Where a page of the chat list starts: after this chat, in newest-activity order. */
export interface ChatCursor {
  updatedAt: Date;
  chatId: string;
}

export interface FinishedReply {
  content: string;
  status: FinalStatus;
  finishReason: FinishReason | null;
  usage: Usage;
  usageEstimated: boolean;
  tokenCount: number;
  timeToFirstTokenMs: number | null;
  durationMs: number;
}

export interface NewTurn {
  chatId: string;
  /** Who the chat belongs to: the API key that created it. */
  ownerId: string;
  /** Stored as the chat's prompt when the request carried one. */
  systemPrompt: string | undefined;
  /** Set when the chat has no title yet. */
  title: string;
  /** `clientId`: the id the client gave the message, unique within the chat (see Rewind for its checks). */
  messages: Array<ChatMessage & { tokenCount: number; clientId?: string }>;
  /** The reply's row, opened as `streaming`; `instanceId` is the server instance generating it. */
  reply: { id: string; model: string; systemPromptHash: string; instanceId: string };
}

/** A chat's prompt, message count and newest messages (oldest first), as loadRecent reads them. */
export interface RecentHistory {
  systemPrompt: string | null;
  messageCount: number;
  messages: StoredMessage[];
}

/**
 * What a turn undoes before it is stored, as the AI SDK's client does to its copy of the chat
 * before it asks for a new reply. Message ids are those the API shows (the client's, if it gave one).
 * - `edit`: user message `messageId` takes `content`, and every message after it is removed.
 * - `regenerate`: with `messageId` an assistant message, it and every message after it are
 *   removed; a user message, every message after it; undefined, the newest message if it is a reply.
 */
export type Rewind =
  | { type: 'edit'; messageId: string; content: string; tokenCount: number }
  | { type: 'regenerate'; messageId: string | undefined };

/** A turn opened together with the read of the chat's history (ChatStore.openTurn). */
export interface TurnOpening extends Omit<NewTurn, 'reply'> {
  /**
   * Applied first, in the same transaction, after the busy check and before the history is read.
   * @throws AppError chat_not_found (no such chat), invalid_request (no such message, or an edit of
   * a message that is not the user's).
   */
  rewind?: Rewind;
  /** The reply's row; its systemPromptHash is that of the prompt in force, worked out by the store. */
  reply: Omit<NewTurn['reply'], 'systemPromptHash'>;
  /** The prompt in force when neither the turn nor the chat carries one. */
  defaultPrompt: string;
  /** How many of the chat's newest messages to read. */
  historyLimit: number;
  /** Nothing is written when the prompt in force is longer than this many UTF-8 bytes; null: no bound. */
  maxPromptBytes: number | null;
}

export interface OpenedTurn {
  /** False when the prompt in force was over `maxPromptBytes`: nothing was written. */
  stored: boolean;
  /** The chat just before the turn (the new rows are not in it); null when it did not exist. */
  before: RecentHistory | null;
}

/**
 * Chats are a namespace per owner: every call that names a chat names its owner too, and another
 * owner's chat with the same id is a different chat, as unknown here as one that does not exist.
 *
 * The database may be locked by another process (a backup, a shell). Calls wait for it without
 * blocking the event loop, up to a bound, then throw AppError `service_unavailable`; the two calls a
 * running reply makes, `saveProgress` and `finishReply`, try once and leave retrying to the caller.
 */
export interface ChatStore {
  /** The chat's prompt, message count and newest `limit` messages, oldest first; null if the owner has no such chat. */
  loadRecent(chatId: string, ownerId: string, limit: number): Promise<RecentHistory | null>;
  /**
   * Creates the chat if new, stores the prompt and the new messages, and opens the reply as
   * `streaming`, in one transaction. The chat keeps its message count and its newest reply.
   *
   * One reply streams per chat across every instance sharing the database: while the chat's newest
   * reply is `streaming` and was opened by another instance, nothing is written and AppError
   * `generation_in_progress` is thrown (of two turns racing, exactly one is stored). A reply still
   * `streaming` from the same instance is one its process no longer runs (the chat service never
   * starts a second turn on a chat it is generating for): it is marked `interrupted` and the turn goes on.
   */
  beginTurn(turn: NewTurn): Promise<void>;
  /**
   * Reads the chat as loadRecent would, then begins the turn as beginTurn does, in one step (one
   * round trip to a database server), so that the history a context is built from costs no wait
   * of its own. The bound on the prompt lets the caller refuse a turn whose prompt cannot fit the
   * model's context before anything is written, without knowing the chat's prompt in advance.
   * @throws AppError generation_in_progress, as beginTurn (never when `stored` would be false).
   * A new message may not take the id of one the chat keeps (ids are unique within a chat, never
   * across chats or owners): AppError message_id_conflict, nothing written.
   */
  openTurn(turn: TurnOpening): Promise<OpenedTurn>;
  /** Saves the text of a reply that is still streaming (a checkpoint); a finished reply is left alone. One attempt. */
  saveProgress(messageId: string, content: string): Promise<void>;
  /** Records how a reply ended, in one attempt; false when its row is gone. */
  finishReply(messageId: string, reply: FinishedReply): Promise<boolean>;
  /**
   * Marks as `interrupted` the replies left `streaming` by instances whose lease has expired or
   * that hold none, and by no instance (rows older than instances); with `includeOwn` (at start,
   * before any reply of this run exists) also those of `instanceId`'s earlier run. Never those of
   * another instance whose lease is current. Returns how many.
   */
  interruptAbandonedReplies(sweeper: { instanceId: string; includeOwn: boolean }): Promise<number>;
  /** Records that `instanceId` is alive for `leaseMs` from now (by the database's clock where it has one). */
  renewLease(instanceId: string, leaseMs: number): Promise<void>;
  /** Gives the lease up on a clean stop, so that what the instance left is swept at once. */
  releaseLease(instanceId: string): Promise<void>;
  /**
   * Removes the messages of deleted chats, a small batch per statement with the event loop free
   * between batches; deleteChat starts this itself, the server calls it at start for purges a
   * stop interrupted. Resolves with how many messages were removed.
   */
  purgeDeletedChats(): Promise<number>;
  /** Up to `limit` messages older than message `before` (or the newest), oldest first; null if the chat is unknown. */
  listMessages(
    chatId: string,
    ownerId: string,
    page: { limit: number; before?: string },
  ): Promise<{ messages: StoredMessage[]; hasMore: boolean } | null>;
  /** Up to `limit` chats, newest activity first, after `cursor`. */
  listChats(ownerId: string, page: { limit: number; cursor?: ChatCursor }): Promise<{ chats: ChatSummary[]; hasMore: boolean }>;
  getChat(chatId: string, ownerId: string): Promise<ChatSummary | null>;
  /** Changes what is given; a title set here is never replaced by a generated one. Null if unknown. */
  updateChat(chatId: string, ownerId: string, changes: { title?: string; systemPrompt?: string | null }): Promise<ChatSummary | null>;
  /** Replaces an automatic title; a title set by a user is kept. */
  setGeneratedTitle(chatId: string, ownerId: string, title: string): Promise<void>;
  /**
   * Deletes the chat: it is gone for every read when this resolves, whatever its size; its
   * messages are removed afterwards (purgeDeletedChats). False if it did not exist.
   */
  deleteChat(chatId: string, ownerId: string): Promise<boolean>;
  /** Resolves when the database answers and is still the one the store opened. */
  ping(): Promise<void>;
  /** Stops a purge between batches (the rest is resumed at the next start) and closes the connections. */
  close(): Promise<void>;
}

/** Counts tokens for one model family. */
export interface TokenCounter {
  readonly encoding: string;
  count(text: string): number;
  /** Tokens a message takes in a prompt, given (or counting) its content's tokens. */
  messageTokens(message: ChatMessage, contentTokens?: number): number;
  /** Tokens every prompt costs on top of its messages. */
  readonly replyPriming: number;
}

/** One event of a model's streamed reply. */
export type LlmEvent =
  | { type: 'text'; text: string }
  | { type: 'finish'; finishReason: FinishReason }
  | { type: 'usage'; usage: Usage };

/** OpenAI's sampling settings beside the temperature, by their wire names. */
export interface Sampling {
  top_p?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  stop?: string | string[];
  seed?: number;
  /** The end user, for the provider's abuse monitoring. */
  user?: string;
}

export interface LlmRequest {
  messages: ChatMessage[];
  signal: AbortSignal;
  /** The client's W3C trace context (`traceparent`, and `tracestate` with it), passed on upstream as it came. */
  traceContext?: TraceContext;
  /** Most tokens the reply may have (sent as `max_tokens`). */
  maxTokens?: number;
  /** Sampling temperature (0–2) for this request; undefined: the configured one. */
  temperature?: number;
  /** The other sampling settings a caller chose (the OpenAI-compatible endpoint), sent upstream as they are. */
  sampling?: Sampling;
}

export interface LlmProvider {
  /** Shown by /healthz: `azure-openai`, `openai` or `simulator`. */
  readonly name: string;
  readonly model: string;
  /**
   * Sends the request, retrying before any token as configured, and resolves once the upstream
   * has accepted it. The events end when the reply ends or `signal` aborts.
   * @throws AppError (upstream_rate_limited, upstream_error, upstream_timeout, context_length_exceeded, content_filtered),
   * or invalid_request for a `temperature` the model does not take (reasoning models take none).
   */
  openStream(request: LlmRequest): Promise<AsyncIterable<LlmEvent>>;
}

/** A W3C trace context a client sent, checked for form. */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

/** What is measured of a reply (a chat turn's, or a completion of the OpenAI-compatible endpoint) when it ends. */
export interface EndedReply {
  model: string;
  status: FinalStatus;
  /** Null when no token came. */
  timeToFirstTokenMs: number | null;
  /** From the start of the turn until the reply was stored (a completion: until it ended). */
  durationMs: number;
  /** From the first token until the upstream stream ended; null when no token came. */
  generatingMs: number | null;
  /** Null when nothing is known (a completion whose provider sent no usage). */
  usage: Usage | null;
  usageEstimated: boolean;
}

/** Where the chat layer reports its replies and upstream failures (the service's metrics). */
export interface ReplyMetrics {
  replyEnded(reply: EndedReply): void;
  /** An upstream request or stream failed, with the taxonomy's code of the failure. */
  upstreamFailed(code: ErrorCode): void;
}
