import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../config/config-error';
import { DatabaseFile } from './database-file';
import { DatabaseOwnerLock } from './database-owner-lock';
import { migrateSqlite, pendingSqliteMigrations } from './migrate-sqlite';
import { PURGE_BATCH_SQL, SqliteChatStatements } from './sqlite-chat-statements';
import { SqliteWorkerThread } from './sqlite-worker-thread';
import { SqliteChatStore } from './sqlite-chat-store';
import { SqliteKeyStatements } from './sqlite-key-statements';
import { SqliteKeyStore } from './sqlite-key-store';
import { SqliteLeaseStatements } from './sqlite-lease-statements';

export interface OpenStoreOptions {
  /** `file:` URL; a relative path is resolved from the working directory. */
  databaseUrl: string;
  migrationsDir: string;
  /** How long a call waits, on timers, for a lock another process holds. */
  lockWaitMs: number;
  /**
   * A serving process owns the file: it takes the owner lock before touching any row, and fails
   * if another server holds it. Tools (the keys CLI) leave it alone and work beside the server.
   */
  owner: boolean;
  /** Apply pending migrations (default); false: refuse a database that has any. */
  migrate?: boolean;
}

/**
 * Opens the SQLite database, creating its folder, taking ownership if asked, and applying pending
 * migrations first (unless `migrate` is false).
 * @returns the stores and the names of the migrations applied now.
 * @throws ConfigError when `owner` is asked and another server owns the file, or when `migrate` is
 *   false and migrations are pending.
 */
export async function openSqliteStore(
  options: OpenStoreOptions,
): Promise<{ store: SqliteChatStore; keys: SqliteKeyStore; appliedMigrations: string[]; databasePath: string }> {
  const databasePath = sqlitePath(options.databaseUrl);
  mkdirSync(path.dirname(databasePath), { recursive: true });
  const ownerLock = options.owner ? DatabaseOwnerLock.acquire(databasePath) : undefined;
  try {
    const appliedMigrations =
      options.migrate === false ? refusePending(databasePath, options.migrationsDir) : migrateSqlite(databasePath, options.migrationsDir);
    // No busy timeout (0): SQLite would wait for a lock inside the synchronous call, stopping the
    // event loop. Locks are waited for on timers instead (lock-wait.ts).
    const database = new Database(databasePath, { timeout: 0 });
    // WAL is stored in the file by the migrator; synchronous is per connection. NORMAL is safe
    // under WAL (a power cut can lose the last commits, never corrupt) and much faster than FULL.
    database.pragma('synchronous = NORMAL');
    // A server checkpoints and purges on a thread of its own (sqlite-worker-thread.ts), never inside a commit.
    let worker: SqliteWorkerThread | undefined;
    if (ownerLock) {
      database.pragma('wal_autocheckpoint = 0');
      worker = SqliteWorkerThread.start(databasePath, { intervalMs: CHECKPOINT_INTERVAL_MS, purgeBatchSql: PURGE_BATCH_SQL });
    }
    const { lockWaitMs } = options;
    const leases = new SqliteLeaseStatements(database);
    if (ownerLock) leases.endEarlierLeases();
    const store = new SqliteChatStore({
      statements: new SqliteChatStatements(database),
      leases,
      file: new DatabaseFile(databasePath),
      lockWaitMs,
      closeConnection: async () => {
        await worker?.stop();
        database.close();
      },
      ownerLock,
      worker,
    });
    return { store, keys: new SqliteKeyStore(new SqliteKeyStatements(database), lockWaitMs), appliedMigrations, databasePath };
  } catch (error) {
    ownerLock?.release();
    throw error;
  }
}

/** How often a server copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 1000;

/** For a server that does not migrate: nothing applied, or a ConfigError naming what is pending. */
function refusePending(databasePath: string, migrationsDir: string): [] {
  const pending = pendingSqliteMigrations(databasePath, migrationsDir);
  if (pending.length > 0) {
    throw new ConfigError(
      `The database has migrations not applied (${pending.join(', ')}) and [database] migrate_on_start is false: ` +
        'run `npm run migrate` first, or set migrate_on_start = true.',
    );
  }
  return [];
}

/** `file:./data/chat.db` → the absolute path of `./data/chat.db` from the working directory. */
export function sqlitePath(databaseUrl: string): string {
  return path.resolve(databaseUrl.replace(/^file:(\/\/(?=\/))?/, ''));
}
