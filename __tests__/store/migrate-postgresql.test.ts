/**
 * The PostgreSQL migrator: it applies the hand-written migrations under prisma/postgresql/migrations
 * once, records them as Prisma does, and lets several instances start at once on an empty database.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { PROJECT_ROOT } from '../../src/build-service';
import { migratePostgresql } from '../../src/store/migrate-postgresql';
import { describePostgres } from '../support/postgres-database';
import { runMigrate } from '../support/run-migrate';

const POSTGRESQL_MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'prisma', 'postgresql', 'migrations');
const MIGRATIONS = readdirSync(POSTGRESQL_MIGRATIONS_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();

async function query<Row>(url: string, sql: string, parameters: unknown[] = []): Promise<Row[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, parameters)).rows as Row[];
  } finally {
    await client.end();
  }
}

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished: boolean;
  rolled_back_at: Date | null;
  applied_steps_count: number;
}

const migrationRows = (url: string) =>
  query<MigrationRow>(
    url,
    `SELECT migration_name, checksum, finished_at IS NOT NULL AS finished, rolled_back_at, applied_steps_count
     FROM "_prisma_migrations" ORDER BY migration_name`,
  );

const checksum = (name: string) =>
  createHash('sha256').update(readFileSync(path.join(POSTGRESQL_MIGRATIONS_DIR, name, 'migration.sql'), 'utf8')).digest('hex');

describePostgres('migratePostgresql', (databases) => {
  test('on an empty database, applies every migration and records each as Prisma does', async () => {
    const applied = await migratePostgresql({ connectionString: databases.url, migrationsDir: POSTGRESQL_MIGRATIONS_DIR });
    expect(applied).toEqual(MIGRATIONS);
    expect(await migrationRows(databases.url)).toEqual(
      MIGRATIONS.map((name) => ({ migration_name: name, checksum: checksum(name), finished: true, rolled_back_at: null, applied_steps_count: 1 })),
    );
    const tables = await query<{ table_name: string }>(
      databases.url,
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    );
    expect(tables.map((row) => row.table_name)).toEqual(['ApiKey', 'Chat', 'ChatPurge', 'InstanceLease', 'Message', '_prisma_migrations']);
  });

  test('a second run applies nothing and records nothing more', async () => {
    const before = await migrationRows(databases.url);
    expect(await migratePostgresql({ connectionString: databases.url, migrationsDir: POSTGRESQL_MIGRATIONS_DIR })).toEqual([]);
    expect(await migrationRows(databases.url)).toEqual(before);
  });

  test('a migration that fails is rolled back whole, named in the error, and not recorded', async () => {
    const url = await databases.create();
    const failing = path.join(PROJECT_ROOT, '__tests__', 'store', 'fixtures', 'failing-postgresql-migrations');
    await expect(migratePostgresql({ connectionString: url, migrationsDir: failing })).rejects.toThrow(
      /^Migration 20990101000000_broken failed: relation "Nowhere" does not exist$/,
    );
    const tables = await query<{ table_name: string }>(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`);
    expect(tables.map((row) => row.table_name).sort()).toEqual(['Applied', '_prisma_migrations']);
    expect((await migrationRows(url)).map((row) => row.migration_name)).toEqual(['20980101000000_fine']);
  });

  test('two migrator processes started at the same instant on an empty database both succeed, and each migration is applied once', async () => {
    const url = await databases.create();
    // Hold the migrators' lock so that both processes are up and waiting before either can begin;
    // releasing it starts them at the same instant.
    const holder = new Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(72707369)');
      const first = runMigrate({ DATABASE_URL: url });
      const second = runMigrate({ DATABASE_URL: url });
      await waitFor(async () => {
        const [row] = await query<{ waiting: number }>(
          url,
          `SELECT count(*)::int AS waiting FROM pg_locks l JOIN pg_database d ON d.oid = l.database
           WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()`,
        );
        return row!.waiting === 2;
      });
      await holder.query('SELECT pg_advisory_unlock(72707369)');
      const results = await Promise.all([first, second]);
      expect(results.map((result) => result.code)).toEqual([0, 0]);
      expect(results.map((result) => result.stdout).sort()).toEqual([
        `Applied ${MIGRATIONS.length} migration${MIGRATIONS.length === 1 ? '' : 's'}: ${MIGRATIONS.join(', ')}\n`,
        'No migrations to apply: the database is up to date.\n',
      ]);
    } finally {
      await holder.end();
    }
    expect((await migrationRows(url)).map((row) => row.migration_name)).toEqual(MIGRATIONS);
  }, 60_000);
});

/** Resolves once `condition` holds, checking every 50 ms; rejects after `timeoutMs`. */
async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
