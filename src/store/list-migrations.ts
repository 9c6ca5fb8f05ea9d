import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface Migration {
  /** The folder's name, which orders the migrations and is recorded once applied. */
  name: string;
  sql: string;
}

/** The migrations under `migrationsDir` in Prisma's folder format (`<name>/migration.sql`), in name order. */
export function listMigrations(migrationsDir: string): Migration[] {
  return readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => ({ name, sql: readFileSync(path.join(migrationsDir, name, 'migration.sql'), 'utf8') }));
}
