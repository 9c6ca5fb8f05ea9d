import type { StreamEntry } from './ui-message-part';

/**
 * What a response reads a reply from: the generation itself on the instance that runs it, or its
 * copy followed from another instance. Parts have ids counting up from 1; the last is `done`.
 */
export interface ReplyStream {
  readonly chatId: string;
  /** The reply's id (the `start` part's `messageId`). */
  readonly messageId: string;
  /** True once the `done` part is in: nothing more will come. */
  readonly isEnded: boolean;
  /** The parts with an id above `lastId`, in order. */
  entriesAfter(lastId: number): StreamEntry[];
  /**
   * Calls `listener` after each new part; the returned function unsubscribes. A reply counts its
   * subscribers: with none left, it goes on only for the resume grace.
   */
  subscribe(listener: () => void): () => void;
}
