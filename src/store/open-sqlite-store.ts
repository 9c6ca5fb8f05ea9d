import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import Database from 'better-sqlite3';
import { PrismaClient } from './generated/client';
import { migrateSqlite } from './migrate-sqlite';
import { SqliteChatStore } from './sqlite-chat-store';
import { SqliteKeyStore } from './sqlite-key-store';
import { SqliteTurnStatements } from './sqlite-turn-statements';

export interface OpenStoreOptions {
  /** `file:` URL; a relative path is resolved from the working directory. */
  databaseUrl: string;
  migrationsDir: string;
  /** How long a write waits for a lock before failing (SQLite busy timeout). */
  busyTimeoutMs?: number;
}

/**
 * Opens the SQLite database, creating its folder and applying pending migrations first.
 * @returns the store and the names of the migrations applied now.
 */
export async function openSqliteStore(
  options: OpenStoreOptions,
): Promise<{ store: SqliteChatStore; keys: SqliteKeyStore; appliedMigrations: string[] }> {
  const databasePath = sqlitePath(options.databaseUrl);
  const timeout = options.busyTimeoutMs ?? 5_000;
  mkdirSync(path.dirname(databasePath), { recursive: true });
  const appliedMigrations = migrateSqlite(databasePath, options.migrationsDir);
  const prisma = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url: databasePath, timeout }) });
  // WAL is stored in the file by the migrator; synchronous is per connection. NORMAL is safe
  // under WAL (a power cut can lose the last commits, never corrupt) and much faster than FULL.
  await prisma.$executeRawUnsafe('PRAGMA synchronous = NORMAL');
  const database = new Database(databasePath, { timeout });
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  const statements = new SqliteTurnStatements(database);
  return { store: new SqliteChatStore(prisma, statements), keys: new SqliteKeyStore(prisma, statements), appliedMigrations };
}

/** `file:./data/chat.db` → the absolute path of `./data/chat.db` from the working directory. */
export function sqlitePath(databaseUrl: string): string {
  return path.resolve(databaseUrl.replace(/^file:(\/\/(?=\/))?/, ''));
}
