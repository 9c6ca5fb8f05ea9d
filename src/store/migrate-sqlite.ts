import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { listMigrations } from './list-migrations';

/** A row of `_prisma_migrations` that counts as applied, as Prisma decides it. */
const APPLIED = `"finished_at" IS NOT NULL AND "rolled_back_at" IS NULL`;

/**
 * Applies the SQL migrations under `migrationsDir` that the database has not seen, in name order,
 * each in its own transaction, and records them in Prisma's `_prisma_migrations` table so that
 * `prisma migrate` sees the same history. Safe to run on every start and from several processes
 * at once (BEGIN IMMEDIATE serializes them).
 *
 * We apply them ourselves because Prisma's migrate commands need a native engine that is
 * downloaded from the network at run time; see README, "Development".
 * @returns the names of the migrations applied now.
 */
export function migrateSqlite(databasePath: string, migrationsDir: string): string[] {
  const database = new Database(databasePath, { timeout: 10_000 });
  try {
    database.pragma('journal_mode = WAL');
    // A migration that rebuilds a table drops the old one, which with foreign keys on would delete
    // the rows that refer to it. The pragma has no effect inside a transaction, so it is set here,
    // and each migration checks the keys itself before it commits.
    database.pragma('foreign_keys = OFF');
    database.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" TEXT PRIMARY KEY NOT NULL,
      "checksum" TEXT NOT NULL,
      "finished_at" DATETIME,
      "migration_name" TEXT NOT NULL,
      "logs" TEXT,
      "rolled_back_at" DATETIME,
      "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
      "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
    )`);
    const applied: string[] = [];
    for (const { name, sql } of listMigrations(migrationsDir)) {
      const applyOnce = database.transaction(() => {
        const done = database
          .prepare(`SELECT 1 FROM "_prisma_migrations" WHERE "migration_name" = ? AND ${APPLIED}`)
          .get(name);
        if (done) return false;
        const startedAt = Date.now();
        database.exec(sql);
        const broken = database.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) throw new Error(`Migration ${name} leaves ${broken.length} rows with a broken foreign key`);
        database
          .prepare(
            `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
             VALUES (?, ?, ?, ?, ?, 1)`,
          )
          .run(randomUUID(), createHash('sha256').update(sql).digest('hex'), Date.now(), name, startedAt);
        return true;
      });
      if (applyOnce.immediate()) applied.push(name);
    }
    return applied;
  } finally {
    database.close();
  }
}

/**
 * The migrations under `migrationsDir` not yet applied to the database at `databasePath`; all of
 * them when the file or its history does not exist. Reads only, and creates nothing.
 */
export function pendingSqliteMigrations(databasePath: string, migrationsDir: string): string[] {
  const names = listMigrations(migrationsDir).map((migration) => migration.name);
  if (!existsSync(databasePath)) return names;
  const database = new Database(databasePath, { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    const history = database.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'`).get();
    if (!history) return names;
    const done = new Set(
      database
        .prepare(`SELECT "migration_name" AS name FROM "_prisma_migrations" WHERE ${APPLIED}`)
        .all()
        .map((row) => (row as { name: string }).name),
    );
    return names.filter((name) => !done.has(name));
  } finally {
    database.close();
  }
}
