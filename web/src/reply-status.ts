import type { ChatMessage } from './api-client';

export type ReplyStatus = 'streaming' | 'completed' | 'cancelled' | 'interrupted' | 'failed';

const KNOWN = new Set<string>(['streaming', 'completed', 'cancelled', 'interrupted', 'failed']);

export const isReplyStatus = (value: unknown): value is ReplyStatus => typeof value === 'string' && KNOWN.has(value);

/** How a reply's stream ended, as useChat's onFinish and the transport saw it. */
export interface StreamEnd {
  message: ChatMessage;
  /** The reason of the stream's `abort` part, null when it had none, undefined when there was no such part. */
  abortReason: string | null | undefined;
  isAbort: boolean;
  isDisconnect: boolean;
  isError: boolean;
  finishReason: string | undefined;
}

/**
 * A reply's status once its stream ended: the service's own word in the metadata if it sent one,
 * else what the stream showed. An `abort` part is a cancel, unless it says the service went away.
 */
export function statusAfterStream(end: StreamEnd): ReplyStatus {
  const declared = end.message.metadata?.status;
  if (isReplyStatus(declared) && declared !== 'streaming') return declared;
  if (end.abortReason !== undefined) return end.abortReason === 'shutdown' || end.abortReason === 'client_disconnected' ? 'interrupted' : 'cancelled';
  // Our own stop(): the page then cancels the reply on the service too.
  if (end.isAbort) return 'cancelled';
  // The connection dropped: the reply may go on without us; a reload shows how it ended.
  if (end.isDisconnect) return 'interrupted';
  if (end.isError) return 'failed';
  return end.finishReason ? 'completed' : 'interrupted';
}

/** The status to show for a message, given what is known of it. */
export function statusOf(message: ChatMessage, options: { streaming: boolean; ended: Record<string, ReplyStatus> }): ReplyStatus | undefined {
  if (message.role === 'user') return 'completed';
  if (options.streaming) return 'streaming';
  const ended = options.ended[message.id];
  if (ended) return ended;
  const stored = message.metadata?.status;
  return isReplyStatus(stored) ? stored : undefined;
}
