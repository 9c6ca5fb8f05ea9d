import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

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
    for (const name of listMigrations(migrationsDir)) {
      const sql = readFileSync(path.join(migrationsDir, name, 'migration.sql'), 'utf8');
      const applyOnce = database.transaction(() => {
        const done = database
          .prepare(`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = ? AND finished_at IS NOT NULL AND rolled_back_at IS NULL`)
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

function listMigrations(migrationsDir: string): string[] {
  return readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}
