import { Worker } from 'node:worker_threads';

/**
 * Runs SQLite's WAL checkpoints on a thread of their own.
 *
 * By default the connection whose commit takes the WAL past 1,000 pages copies the WAL into the
 * database file inside that commit, and better-sqlite3 calls are synchronous: on the serving
 * connection that stopped the event loop for tens to hundreds of milliseconds at a time (31 ms
 * with an empty database, 368 ms with a million messages, while a deleted chat was purged;
 * bench/scale-analysis.md). So the serving connection turns automatic checkpoints off and this
 * worker, with a connection of its own, checkpoints every `intervalMs` instead. PASSIVE mode never
 * waits for readers or writers: it copies what it can, and the next writer starts the WAL over
 * once all of it has been copied.
 */
export class SqliteCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  private constructor(worker: Worker) {
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    // A failing checkpoint (the file locked for a long time, say) is retried at the next interval;
    // nothing is lost meanwhile, the WAL only grows.
    worker.on('error', () => undefined);
    worker.unref();
  }

  /** Starts checkpointing `databasePath` every `intervalMs`. */
  static start(databasePath: string, intervalMs: number): SqliteCheckpointer {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Resolved here: the worker's own resolution would start from the working directory.
      workerData: { databasePath, intervalMs, driver: require.resolve('better-sqlite3') },
    });
    return new SqliteCheckpointer(worker);
  }

  /** Checkpoints once more and stops. */
  async stop(): Promise<void> {
    // Referenced again while it finishes: otherwise a process with nothing else left to do would
    // exit (code 0) before the worker does, in the middle of whoever awaits this.
    this.worker.ref();
    this.worker.postMessage('stop');
    await this.exited;
  }
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
// Waiting for a lock here blocks this thread only.
const database = new Database(workerData.databasePath, { timeout: 1000 });
const checkpoint = () => {
  try {
    database.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Locked or busy: the next interval tries again.
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  database.close();
  parentPort.close();
});
`;
