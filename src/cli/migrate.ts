/**
 * Applies the pending migrations to the database named by DATABASE_URL (or `[database] url`,
 * CONFIG_PATH included), SQLite or PostgreSQL, then exits: for deployments that migrate as a step
 * of their own and start servers with `[database] migrate_on_start = false`. Reads `.env` from the
 * working directory, as the server does. Exit code 0 when the database is up to date.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../build-service';
import { loadConfig } from '../config/load-config';
import { migrateDatabase } from '../store/migrate-database';

async function main(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig(path.join(PROJECT_ROOT, 'config', 'default.toml'), process.env);
  const applied = await migrateDatabase(config.database.url, path.join(PROJECT_ROOT, 'prisma'));
  process.stdout.write(
    applied.length === 0
      ? 'No migrations to apply: the database is up to date.\n'
      : `Applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`Cannot migrate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
