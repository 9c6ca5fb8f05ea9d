import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { migrateSqlite } from './migrate-sqlite';
import { sqlitePath } from './open-sqlite-store';

export type DatabaseEngine = 'sqlite' | 'postgresql';

/** The engine a validated `[database] url` names: `file:` is SQLite, `postgres(ql)://` PostgreSQL. */
export function databaseEngine(databaseUrl: string): DatabaseEngine {
  return databaseUrl.startsWith('file:') ? 'sqlite' : 'postgresql';
}

/** An engine's migrations folder: `prisma/migrations` (SQLite) or `prisma/postgresql/migrations`. */
export function migrationsDir(prismaDir: string, engine: DatabaseEngine): string {
  return engine === 'sqlite' ? path.join(prismaDir, 'migrations') : path.join(prismaDir, 'postgresql', 'migrations');
}

/**
 * Applies the pending migrations of the database `databaseUrl` names, with its engine's
 * migrator; a SQLite file's folder, or a PostgreSQL database that does not exist, is created first.
 * @returns the names of the migrations applied now.
 * @throws what the engine's migrator throws (a failed migration, an unreachable server).
 */
export async function migrateDatabase(databaseUrl: string, prismaDir: string): Promise<string[]> {
  const engine = databaseEngine(databaseUrl);
  if (engine === 'postgresql') {
    // Loaded for PostgreSQL only: a SQLite service never needs `pg` in memory.
    const { ensurePostgresqlDatabase } = require('./ensure-postgresql-database') as typeof import('./ensure-postgresql-database');
    const { migratePostgresql } = require('./migrate-postgresql') as typeof import('./migrate-postgresql');
    await ensurePostgresqlDatabase(databaseUrl, 10_000);
    return migratePostgresql({ connectionString: databaseUrl, migrationsDir: migrationsDir(prismaDir, engine) });
  }
  const databasePath = sqlitePath(databaseUrl);
  mkdirSync(path.dirname(databasePath), { recursive: true });
  return migrateSqlite(databasePath, migrationsDir(prismaDir, engine));
}
