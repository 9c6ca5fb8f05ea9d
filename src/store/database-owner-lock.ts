import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { ConfigError } from '../config/config-error';

interface Holder {
  pid: number;
  host: string;
  since: string;
}

/**
 * Makes one server process the owner of a SQLite file: the process that holds the write lock of a
 * small side database, `<file>.lock`, for as long as it runs.
 *
 * The lock is SQLite's own (a POSIX lock on the side file), so the operating system drops it when
 * the holder dies, even by SIGKILL: a restart is never refused by a stale lock, as it would be by a
 * pid file. The side file keeps the holder's pid, host and start time, committed just before the
 * lock is taken for good, so that a second server can say who holds it. It is in rollback-journal
 * mode, where others may read while one connection holds the write lock.
 */
export class DatabaseOwnerLock {
  private constructor(private readonly connection: Database.Database) {}

  /**
   * Takes ownership of the database at `databasePath`.
   * @throws ConfigError naming the file and, when known, the process that owns it.
   */
  static acquire(databasePath: string): DatabaseOwnerLock {
    const lockPath = `${databasePath}.lock`;
    const connection = new Database(lockPath, { timeout: 0 });
    try {
      connection.exec('CREATE TABLE IF NOT EXISTS "holder" ("pid" INTEGER NOT NULL, "host" TEXT NOT NULL, "since" TEXT NOT NULL)');
      if (!tryWriteLock(connection)) throw inUse(databasePath, readHolder(connection));
      connection.prepare('DELETE FROM "holder"').run();
      connection.prepare('INSERT INTO "holder" VALUES (?, ?, ?)').run(process.pid, hostname(), new Date().toISOString());
      connection.exec('COMMIT');
      // Another server could start in the instant between COMMIT and this BEGIN: then it is the owner.
      if (!tryWriteLock(connection)) throw inUse(databasePath, readHolder(connection));
      return new DatabaseOwnerLock(connection);
    } catch (error) {
      connection.close();
      throw error;
    }
  }

  /** Gives ownership up (closing the connection ends its transaction and so the lock). */
  release(): void {
    if (this.connection.open) this.connection.close();
  }
}

function tryWriteLock(connection: Database.Database): boolean {
  try {
    connection.exec('BEGIN IMMEDIATE');
    return true;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) return false;
    throw error;
  }
}

function readHolder(connection: Database.Database): Holder | undefined {
  try {
    return connection.prepare<[], Holder>('SELECT "pid", "host", "since" FROM "holder"').get();
  } catch {
    return undefined;
  }
}

function inUse(databasePath: string, holder: Holder | undefined): ConfigError {
  const who = holder
    ? `server process ${holder.pid} on ${holder.host === hostname() ? 'this machine' : `host ${holder.host}`}, running since ${holder.since}`
    : 'another server process';
  return new ConfigError(
    `the database ${databasePath} is in use by ${who}. One server owns a SQLite file at a time: ` +
      'stop that one first, or give this one its own DATABASE_URL.',
  );
}
