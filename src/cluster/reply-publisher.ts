import type { Generation } from '../chat/generation';
import type { ReplyMessage } from './reply-messages';

interface Watched {
  generation: Generation;
  channel: string;
  /** The last part id published. */
  cursor: number;
  unsubscribe: () => void;
  /** Instances following the reply, and when their interest lapses unless renewed. */
  watchers: Map<string, number>;
  /** Something was published since the last tick of `keepAlive`. */
  spoke: boolean;
}

/**
 * Publishes the parts of this instance's replies that other instances follow, and only those: a
 * reply nobody follows elsewhere costs nothing per part. A follower counts as a reader of the
 * generation (it holds off the resume grace) for as long as it renews its interest. Parts appended
 * together go out together, in one message per reply.
 */
export class ReplyPublisher {
  private readonly watched = new Map<string, Watched>();
  private readonly dirty = new Set<Watched>();
  private flushScheduled = false;

  constructor(
    private readonly publish: (channel: string, message: ReplyMessage) => void,
    private readonly leaseMs: number,
  ) {}

  /** `from` follows the generation: sends what it has (if `snapshot`) and keeps sending until it ends. */
  watch(generation: Generation, channel: string, from: string, snapshot: boolean): void {
    let watched = this.watched.get(generation.messageId);
    if (!watched) {
      const entry: Watched = { generation, channel, cursor: 0, unsubscribe: () => undefined, watchers: new Map(), spoke: false };
      entry.unsubscribe = generation.subscribe(() => this.markDirty(entry));
      this.watched.set(generation.messageId, entry);
      watched = entry;
      snapshot = true;
    }
    watched.watchers.set(from, Date.now() + this.leaseMs);
    if (snapshot) {
      // Everything so far, for the newcomer; followers that have it skip it by id.
      this.send(watched, generation.entriesAfter(0));
      watched.cursor = Math.max(watched.cursor, generation.lastId);
    }
  }

  unwatch(messageId: string, from: string): void {
    const watched = this.watched.get(messageId);
    if (!watched) return;
    watched.watchers.delete(from);
    if (watched.watchers.size === 0) this.drop(watched);
  }

  /**
   * Called every third of the lease: tells followers of a quiet reply that its instance is alive,
   * and forgets followers that stopped renewing their interest (their instance is gone).
   */
  keepAlive(): void {
    const now = Date.now();
    for (const watched of this.watched.values()) {
      for (const [from, until] of watched.watchers) if (until < now) watched.watchers.delete(from);
      if (watched.watchers.size === 0) {
        this.drop(watched);
        continue;
      }
      if (!watched.spoke) this.publish(watched.channel, { type: 'alive' });
      watched.spoke = false;
    }
  }

  /** Publishes what is pending now (at shutdown, before the connection closes). */
  flush(): void {
    this.flushScheduled = false;
    for (const watched of this.dirty) {
      const entries = watched.generation.entriesAfter(watched.cursor);
      if (entries.length > 0) {
        watched.cursor = entries.at(-1)!.id;
        this.send(watched, entries);
      }
      // The generation has ended and its last part is out: nothing more to follow.
      if (watched.generation.isEnded && watched.cursor === watched.generation.lastId) this.drop(watched);
    }
    this.dirty.clear();
  }

  private markDirty(watched: Watched): void {
    this.dirty.add(watched);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // As soon as the code that appended is done (parts appended together go out together), not at
    // the end of the loop's poll phase: under load, that phase holds the I/O of every other stream,
    // which a reader on this instance does not wait for either (bench/cluster-results.md).
    queueMicrotask(() => this.flush());
  }

  private send(watched: Watched, entries: ReturnType<Generation['entriesAfter']>): void {
    watched.spoke = true;
    this.publish(watched.channel, { type: 'parts', entries: entries.map((entry) => [entry.id, entry.part]) });
  }

  private drop(watched: Watched): void {
    watched.unsubscribe();
    this.watched.delete(watched.generation.messageId);
    this.dirty.delete(watched);
  }
}
