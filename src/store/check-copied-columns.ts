/**
 * The columns of the copied tables on each side, checked against the list the copy knows: a
 * column added by a later migration must not be left behind without a word.
 */
import type Database from 'better-sqlite3';
import type { Client } from 'pg';
import { COPIED_TABLES, SKIPPED_TABLES } from './copied-tables';

/**
 * @throws Error naming a table of the SQLite source that db:copy neither copies nor knows to skip
 * (a table added by a later migration), rather than leaving its rows behind without a word.
 */
export function checkSqliteTables(source: Database.Database): void {
  const known = new Set([...COPIED_TABLES.map((table) => table.name), ...SKIPPED_TABLES, '_prisma_migrations']);
  const tables = source.prepare(`SELECT "name" FROM sqlite_master WHERE "type" = 'table' AND "name" NOT LIKE 'sqlite\\_%' ESCAPE '\\'`).all() as Array<{ name: string }>;
  const unknown = tables.map((table) => table.name).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new Error(`the source has tables db:copy does not know (${unknown.join(', ')}): its table list (src/store/copied-tables.ts) needs updating`);
  }
}

/** Each copied table's columns in the SQLite source. */
export function sqliteColumns(source: Database.Database): Map<string, string[]> {
  return new Map(
    COPIED_TABLES.map((table) => [table.name, (source.pragma(`table_info("${table.name}")`) as Array<{ name: string }>).map((column) => column.name)]),
  );
}

/** Each copied table's columns in the PostgreSQL target (its current schema). */
export async function postgresColumns(target: Client): Promise<Map<string, string[]>> {
  const { rows } = await target.query(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY($1)`,
    [COPIED_TABLES.map((table) => table.name)],
  );
  const columns = new Map<string, string[]>(COPIED_TABLES.map((table) => [table.name, []]));
  for (const row of rows as Array<{ table_name: string; column_name: string }>) columns.get(row.table_name)!.push(row.column_name);
  return columns;
}

/** @throws Error naming the columns a side has or lacks beyond the copy's list. */
export function checkColumns(side: 'source' | 'target', found: Map<string, string[]>): void {
  for (const table of COPIED_TABLES) {
    const known = new Set(table.columns.map(([name]) => name));
    const columns = found.get(table.name) ?? [];
    const unknown = columns.filter((name) => !known.has(name));
    const missing = [...known].filter((name) => !columns.includes(name));
    if (unknown.length > 0 || missing.length > 0) {
      const what = [unknown.length > 0 && `has ${unknown.join(', ')}`, missing.length > 0 && `lacks ${missing.join(', ')}`].filter(Boolean).join(' and ');
      throw new Error(`the ${side}'s ${table.name} table ${what}, which db:copy does not expect: its column list (src/store/copied-tables.ts) needs updating`);
    }
  }
}
