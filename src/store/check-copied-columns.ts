/**
 * The columns of the copied tables on each side, checked against the list the copy knows: a
 * column added by a later migration must not be left behind without a word.
 */
import type Database from 'better-sqlite3';
import type { Client } from 'pg';
import { COPIED_TABLES } from './copied-tables';

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
