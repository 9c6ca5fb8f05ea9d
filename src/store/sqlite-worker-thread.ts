import { Worker } from 'node:worker_threads';
import type { PendingPurge } from './deleted-chat-purge';

/**
 * A thread of its own, with a connection of its own, for the SQLite work that may take long: WAL
 * checkpoints and the batches that remove a deleted chat's messages. better-sqlite3 calls are
 * synchronous, so on the serving connection either one stops the event loop for as long as it
 * runs, which the size of the file and the disk decide, not the request:
 *
 * - Checkpoints. By default the connection whose commit takes the WAL past 1,000 pages copies the
 *   WAL into the database file inside that commit: 31 ms with an empty database, 368 ms with a
 *   million messages while a deleted chat was purged (bench/scale-analysis.md). The serving
 *   connection turns automatic checkpoints off and this thread checkpoints every `intervalMs`
 *   instead. PASSIVE mode never waits for readers or writers: it copies what it can, and the next
 *   writer starts the WAL over once all of it has been copied.
 * - Purge batches. Each message a batch deletes touches a random leaf of the id index; in a large
 *   file under write-back pressure a batch of 100 took up to 78 ms on the loop
 *   (bench/scale-results.md). Here it blocks this thread only, waiting for the write lock if it
 *   must; the serving connection's writers wait for the batch on timers, as for any other writer.
 */
export class SqliteWorkerThread {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private readonly pending = new Map<number, { resolve: (removed: number) => void; reject: (error: Error) => void }>();
  private nextId = 0;

  private constructor(worker: Worker) {
    this.worker = worker;
    this.exited = new Promise((resolve) =>
      worker.once('exit', () => {
        this.failPending(new Error('The SQLite worker thread stopped.'));
        resolve();
      }),
    );
    worker.on('message', (message: { id: number; removed?: number; error?: string }) => {
      const call = this.pending.get(message.id);
      if (!call) return;
      this.pending.delete(message.id);
      if (message.error === undefined) call.resolve(message.removed!);
      else call.reject(new Error(message.error));
    });
    // A failing checkpoint (the file locked for a long time, say) is retried at the next interval;
    // nothing is lost meanwhile, the WAL only grows. A purge that fails is resumed later.
    worker.on('error', (error) => this.failPending(error));
    worker.unref();
  }

  /** Starts checkpointing `databasePath` every `intervalMs`; `purgeBatchSql` removes one batch of a purge. */
  static start(databasePath: string, options: { intervalMs: number; purgeBatchSql: string }): SqliteWorkerThread {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Resolved here: the worker's own resolution would start from the working directory.
      workerData: { databasePath, ...options, driver: require.resolve('better-sqlite3') },
    });
    return new SqliteWorkerThread(worker);
  }

  /** Removes one batch of the purge's messages on this thread. @returns how many were removed. */
  removePurgeBatch(purge: PendingPurge): Promise<number> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'purge', id, ownerId: purge.ownerId, chatId: purge.chatId, upToSeq: Number(purge.upToSeq) });
    });
  }

  /** Checkpoints once more and stops. */
  async stop(): Promise<void> {
    // Referenced again while it finishes: otherwise a process with nothing else left to do would
    // exit (code 0) before the worker does, in the middle of whoever awaits this.
    this.worker.ref();
    this.worker.postMessage({ type: 'stop' });
    await this.exited;
  }

  private failPending(error: Error): void {
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
  }
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
// Waiting for a lock here blocks this thread only.
const database = new Database(workerData.databasePath, { timeout: 5000 });
database.pragma('synchronous = NORMAL');
const purgeBatch = database.prepare(workerData.purgeBatchSql);
const checkpoint = () => {
  try {
    database.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Locked or busy: the next interval tries again.
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message.type === 'purge') {
    try {
      const removed = purgeBatch.run(message.ownerId, message.chatId, message.upToSeq).changes;
      parentPort.postMessage({ id: message.id, removed });
    } catch (error) {
      parentPort.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
    }
    return;
  }
  if (message.type !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  database.close();
  parentPort.close();
});
`;
