import { createHash, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { listMigrations } from './list-migrations';

/**
 * The advisory lock key Prisma's own `migrate` commands take (schema engine, postgres flavour):
 * holding the same one keeps this migrator and `prisma migrate deploy` from running at once.
 */
const MIGRATION_LOCK = 72707369;

/**
 * Applies the SQL migrations under `migrationsDir` that the database has not seen, in name order,
 * each in its own transaction, and records them in Prisma's `_prisma_migrations` table. The whole
 * run holds a session advisory lock, so instances starting at once on an empty database take
 * turns: the first applies, the others find nothing left to do.
 * @returns the names of the migrations applied now.
 * @throws Error `Migration <name> failed: <reason>` when one fails; it is rolled back and the
 *   ones after it are not tried. Connection errors are thrown as `pg` reports them.
 */
export async function migratePostgresql(options: { connectionString: string; migrationsDir: string }): Promise<string[]> {
  const client = new Client({ connectionString: options.connectionString });
  await client.connect();
  try {
    // Released by the unlock below, or by PostgreSQL when the connection ends (a crash included).
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    )`);
    const done = new Set(await appliedMigrationNames(client));
    const applied: string[] = [];
    for (const { name, sql } of listMigrations(options.migrationsDir)) {
      if (done.has(name)) continue;
      await applyMigration(client, name, sql);
      applied.push(name);
    }
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    return applied;
  } finally {
    await client.end();
  }
}

/**
 * The migrations under `migrationsDir` that the database has not applied, in name order (all of
 * them on a database never migrated). Takes no lock and changes nothing.
 * @throws Errors as `pg` reports them when the server cannot be reached.
 */
export async function pendingPostgresqlMigrations(options: { connectionString: string; migrationsDir: string }): Promise<string[]> {
  const client = new Client({ connectionString: options.connectionString });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS "exists"`);
    const done = new Set(rows[0].exists ? await appliedMigrationNames(client) : []);
    return listMigrations(options.migrationsDir)
      .map((migration) => migration.name)
      .filter((name) => !done.has(name));
  } finally {
    await client.end();
  }
}

async function appliedMigrationNames(client: Client): Promise<string[]> {
  const { rows } = await client.query(
    `SELECT "migration_name" FROM "_prisma_migrations" WHERE "finished_at" IS NOT NULL AND "rolled_back_at" IS NULL`,
  );
  return rows.map((row: { migration_name: string }) => row.migration_name);
}

async function applyMigration(client: Client, name: string, sql: string): Promise<void> {
  const startedAt = new Date();
  await client.query('BEGIN');
  try {
    // Without parameters, pg sends the text as one simple query: several statements are allowed.
    await client.query(sql);
    await client.query(
      `INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name", "started_at", "applied_steps_count")
       VALUES ($1, $2, clock_timestamp(), $3, $4, 1)`,
      [randomUUID(), createHash('sha256').update(sql).digest('hex'), name, startedAt],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw new Error(`Migration ${name} failed: ${(error as Error).message}`, { cause: error });
  }
}
