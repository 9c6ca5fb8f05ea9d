import type { SqlRunner } from './postgresql-sql';

/** Messages removed per statement: small enough that no statement holds locks or a connection for long. */
const BATCH_SIZE = 1000;

const PENDING_PURGES = `SELECT "ownerId", "chatId", "upToSeq" FROM "ChatPurge" ORDER BY "deletedAt", "ownerId", "chatId"`;

/** $1 ownerId, $2 chatId, $3 upToSeq, $4 batch size. By the index on (ownerId, chatId, seq). */
const DELETE_BATCH = `DELETE FROM "Message" WHERE "seq" IN (
  SELECT "seq" FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2 AND "seq" <= $3::bigint ORDER BY "seq" LIMIT $4::int
)`;

const PURGE_DONE = `DELETE FROM "ChatPurge" WHERE "ownerId" = $1 AND "chatId" = $2 AND "upToSeq" = $3::bigint`;

interface PurgeRow {
  ownerId: string;
  chatId: string;
  upToSeq: bigint | string;
}

/**
 * Removes the messages of deleted chats (the ChatPurge rows), a batch per statement, one purge
 * at a time in this process. Instances may purge the same chat at once: a batch deletes whatever
 * is still there, and a chat is done when a batch finds nothing.
 */
export class DeletedChatPurge {
  private running: Promise<unknown> = Promise.resolve();
  /** A run waiting for the current one; later calls join it rather than queue another. */
  private queued: Promise<number> | undefined;
  private stopped = false;

  constructor(private readonly sql: SqlRunner) {}

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
    for (const purge of await this.sql.rows<PurgeRow>(PENDING_PURGES)) {
      const key = [purge.ownerId, purge.chatId, String(purge.upToSeq)] as const;
      for (;;) {
        if (this.stopped) return removed;
        const count = await this.sql.execute(DELETE_BATCH, ...key, BATCH_SIZE);
        removed += count;
        // Not `count < BATCH_SIZE`: another instance may have taken part of this batch's rows.
        if (count === 0) break;
      }
      await this.sql.execute(PURGE_DONE, ...key);
    }
    return removed;
  }
}
