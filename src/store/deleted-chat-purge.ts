import { setImmediate as nextTurn } from 'node:timers/promises';

/** A deleted chat whose messages up to `upToSeq` are still to be removed (a ChatPurge row). */
export interface PendingPurge {
  ownerId: string;
  chatId: string;
  upToSeq: number | bigint | string;
}

/** What a purge does on one engine: each step is one statement. */
export interface PurgeSteps {
  /** The pending purges, oldest first. */
  pending(): Promise<PendingPurge[]>;
  /** Removes up to one batch of the purge's messages; resolves with how many. */
  removeBatch(purge: PendingPurge): Promise<number>;
  /** Ends the purge (its ChatPurge row) once no message of it is left. */
  finish(purge: PendingPurge): Promise<void>;
}

/**
 * Removes the messages of deleted chats, a batch per statement, one purge at a time in this
 * process, the event loop turning before each batch (a serving process on SQLite runs the batches
 * on its worker thread; without one they run on the loop). Instances may
 * purge the same chat at once: a batch deletes whatever is still there, and a chat is done when
 * a batch finds nothing (not when one finds fewer than asked: another instance may have taken
 * part of it).
 */
export class DeletedChatPurge {
  private running: Promise<unknown> = Promise.resolve();
  /** A run waiting for the current one; later calls join it rather than queue another. */
  private queued: Promise<number> | undefined;
  private stopped = false;

  constructor(private readonly steps: PurgeSteps) {}

  /** Runs after the purge under way, if any. Resolves with how many messages it removed. */
  run(): Promise<number> {
    if (this.stopped) return Promise.resolve(0);
    if (this.queued) return this.queued;
    const next = this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.purgeAll();
      });
    this.queued = next;
    this.running = next;
    return next;
  }

  /** Stops between batches; what is left is resumed by the next run (at the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running.catch(() => undefined);
  }

  private async purgeAll(): Promise<number> {
    let removed = 0;
    for (const purge of await this.steps.pending()) {
      for (;;) {
        // Requests and streams run before each batch, the first too (which would otherwise run
        // in the tick of the DELETE that started the purge).
        await nextTurn();
        if (this.stopped) return removed;
        const count = await this.steps.removeBatch(purge);
        removed += count;
        if (count === 0) break;
      }
      await this.steps.finish(purge);
    }
    return removed;
  }
}
