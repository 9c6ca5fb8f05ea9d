import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { checkColumns, checkSqliteTables, postgresColumns, sqliteColumns } from './check-copied-columns';
import { COPIED_TABLES, type CopiedTable, toPostgresValue } from './copied-tables';
import { databaseEngine, migrateDatabase, migrationsDir } from './migrate-database';
import { pendingSqliteMigrations } from './migrate-sqlite';
import { sqlitePath } from './open-sqlite-store';

export interface CopyDatabaseOptions {
  /** The SQLite database, a `file:` URL. */
  from: string;
  /** The PostgreSQL database, a `postgres://` or `postgresql://` URL. */
  to: string;
  /** The folder holding both engines' migrations. */
  prismaDir: string;
  /** Told each step, one line at a time. */
  log?: (line: string) => void;
}

/** What the source held when it was read, and the target holds after the copy. */
export interface DatabaseFacts {
  counts: Record<string, number>;
  /** The highest message seq, or null without messages. */
  maxSeq: number | null;
  /** The UTF-8 size of every message's content, added up: a cheap checksum of the text. */
  contentBytes: number;
}

export interface CopySummary extends DatabaseFacts {
  /** PostgreSQL migrations applied to the target before the copy. */
  appliedMigrations: string[];
}

/** Rows per INSERT, and characters per INSERT, whichever comes first. */
const BATCH_ROWS = 1000;
const BATCH_CHARACTERS = 8_000_000;

/**
 * Copies every API key, chat, message (keeping each `seq`) and pending chat purge of a migrated
 * SQLite database into an empty PostgreSQL database, migrating the target first. The source is
 * opened read-only and read in one transaction, a consistent snapshot even while a server writes
 * to it; the target is written in one transaction, so a failure leaves it as it was. After the
 * commit the target's counts, highest seq and content length are compared with the source's.
 * @throws Error when the source does not exist or has migrations pending, when the target holds
 *   rows, when a value does not fit its column, when verification finds a difference, or as
 *   better-sqlite3 and pg report a failure (the target's migrations may have been applied then).
 */
export async function copyDatabase(options: CopyDatabaseOptions): Promise<CopySummary> {
  const log = options.log ?? (() => {});
  if (databaseEngine(options.from) !== 'sqlite') throw new Error('the source must be a SQLite database (a file: URL)');
  if (databaseEngine(options.to) !== 'postgresql') throw new Error('the target must be a PostgreSQL database (a postgres:// URL)');
  const sourcePath = sqlitePath(options.from);
  if (!existsSync(sourcePath)) throw new Error(`the source database ${sourcePath} does not exist`);
  const pending = pendingSqliteMigrations(sourcePath, migrationsDir(options.prismaDir, 'sqlite'));
  if (pending.length > 0) {
    throw new Error(
      `the source database has migrations not applied (${pending.join(', ')}): ` +
        `start the server on it once, or run \`DATABASE_URL=${options.from} npm run migrate\``,
    );
  }
  const source = new Database(sourcePath, { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    checkSqliteTables(source);
    checkColumns('source', sqliteColumns(source));
    const appliedMigrations = await migrateDatabase(options.to, options.prismaDir);
    if (appliedMigrations.length > 0) log(`Applied ${plural(appliedMigrations.length, 'migration')} to the target: ${appliedMigrations.join(', ')}`);
    const target = new Client({ connectionString: options.to });
    await target.connect();
    try {
      checkColumns('target', await postgresColumns(target));
      // Deferred: the snapshot starts with the first read below and lasts until the connection closes.
      source.exec('BEGIN');
      const expected = sourceFacts(source);
      await copyRows(source, target, expected, log);
      const found = await targetFacts(target);
      const differences = describeDifferences(expected, found);
      if (differences) throw new Error(`the copy was committed, but the target does not match the source: ${differences}`);
      return { ...found, appliedMigrations };
    } finally {
      await target.end();
    }
  } finally {
    source.close();
  }
}

/** Every table in one target transaction, the message sequence set past every seq the source used. */
async function copyRows(source: Database.Database, target: Client, expected: SourceFacts, log: (line: string) => void): Promise<void> {
  await target.query('BEGIN');
  try {
    // Nobody else writes the tables while they are checked empty and filled; waiting is bounded.
    await target.query(`SET LOCAL lock_timeout = '10s'`);
    await target.query(`LOCK TABLE ${COPIED_TABLES.map((table) => `"${table.name}"`).join(', ')} IN EXCLUSIVE MODE`);
    const present = (await targetFacts(target)).counts;
    if (Object.values(present).some((count) => count > 0)) {
      throw new Error(`the target database already holds rows (${describeCounts(present)}): db:copy only fills an empty database`);
    }
    for (const table of COPIED_TABLES) {
      const rows = source.prepare(`SELECT ${columnList(table)} FROM "${table.name}" ORDER BY ${table.orderBy}`).raw().iterate() as IterableIterator<unknown[]>;
      for (const batch of batches(rows)) {
        // U+0000 (1 byte) is copied as U+FFFD (3 bytes): the checksum expects them.
        expected.contentBytes += 2 * (table.name === 'Message' ? nulCharacters(batch, columnIndex(table, 'content')) : 0);
        await insertBatch(target, table, batch);
      }
      log(`Copied ${plural(expected.counts[table.name] ?? 0, 'row')} of ${table.name}.`);
    }
    // A new message must come after every seq SQLite handed out, not only after the messages still
    // there: a deleted chat's seqs live on in ChatPurge.upToSeq and Chat.baseSeq.
    const lastSeq = expected.lastUsedSeq;
    await target.query(`SELECT setval(pg_get_serial_sequence('"Message"', 'seq'), $1, $2)`, [Math.max(lastSeq, 1), lastSeq >= 1]);
    await target.query('COMMIT');
  } catch (error) {
    await target.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

function columnIndex(table: CopiedTable, column: string): number {
  return table.columns.findIndex(([name]) => name === column);
}

function nulCharacters(rows: unknown[][], index: number): number {
  let count = 0;
  for (const row of rows) {
    const value = row[index];
    if (typeof value === 'string' && value.includes('\u0000')) count += value.split('\u0000').length - 1;
  }
  return count;
}

function* batches(rows: Iterable<unknown[]>): Generator<unknown[][]> {
  let batch: unknown[][] = [];
  let characters = 0;
  for (const row of rows) {
    batch.push(row);
    for (const value of row) if (typeof value === 'string') characters += value.length;
    if (batch.length >= BATCH_ROWS || characters >= BATCH_CHARACTERS) {
      yield batch;
      batch = [];
      characters = 0;
    }
  }
  if (batch.length > 0) yield batch;
}

/** One INSERT for the batch, each column sent as one array and turned back into rows by `unnest`. */
async function insertBatch(target: Client, table: CopiedTable, rows: unknown[][]): Promise<void> {
  const arrays = table.columns.map(([name, type], index) =>
    rows.map((row) => {
      try {
        return toPostgresValue(row[index], type);
      } catch (error) {
        throw new Error(`${table.name} ${table.columns[0]![0]} ${String(row[0])}: "${name}" holds ${(error as Error).message}`);
      }
    }),
  );
  const casts = table.columns.map(([, type], index) => `$${index + 1}::${type}[]`).join(', ');
  await target.query(`INSERT INTO "${table.name}" (${columnList(table)}) SELECT * FROM unnest(${casts})`, arrays);
}

interface SourceFacts extends DatabaseFacts {
  /** The highest seq SQLite has handed out, whether or not its message still exists; 0 for none. */
  lastUsedSeq: number;
}

function sourceFacts(source: Database.Database): SourceFacts {
  const counts: Record<string, number> = {};
  for (const table of COPIED_TABLES) {
    counts[table.name] = (source.prepare(`SELECT COUNT(*) AS count FROM "${table.name}"`).get() as { count: number }).count;
  }
  const facts = source
    .prepare(
      `SELECT (SELECT MAX("seq") FROM "Message") AS maxSeq,
              -- Bytes, not characters: SQLite's LENGTH of text stops at a NUL character.
              (SELECT COALESCE(SUM(LENGTH(CAST("content" AS BLOB))), 0) FROM "Message") AS contentBytes,
              MAX(COALESCE((SELECT MAX("seq") FROM "Message"), 0),
                  COALESCE((SELECT "seq" FROM sqlite_sequence WHERE "name" = 'Message'), 0),
                  COALESCE((SELECT MAX("baseSeq") FROM "Chat"), 0),
                  COALESCE((SELECT MAX("upToSeq") FROM "ChatPurge"), 0)) AS lastUsedSeq`,
    )
    .get() as { maxSeq: number | null; contentBytes: number; lastUsedSeq: number };
  return { counts, ...facts };
}

async function targetFacts(target: Client): Promise<DatabaseFacts> {
  const counts: Record<string, number> = {};
  for (const table of COPIED_TABLES) {
    const { rows } = await target.query(`SELECT COUNT(*) AS count FROM "${table.name}"`);
    counts[table.name] = Number(rows[0].count);
  }
  const { rows } = await target.query(
    `SELECT MAX("seq") AS "maxSeq", COALESCE(SUM(octet_length("content")), 0) AS "contentBytes" FROM "Message"`,
  );
  return { counts, maxSeq: rows[0].maxSeq === null ? null : Number(rows[0].maxSeq), contentBytes: Number(rows[0].contentBytes) };
}

function describeDifferences(expected: DatabaseFacts, found: DatabaseFacts): string {
  const differences = COPIED_TABLES.filter((table) => expected.counts[table.name] !== found.counts[table.name]).map(
    (table) => `${table.name}: ${expected.counts[table.name]} rows in the source, ${found.counts[table.name]} in the target`,
  );
  if (expected.maxSeq !== found.maxSeq) differences.push(`highest message seq: ${expected.maxSeq} in the source, ${found.maxSeq} in the target`);
  if (expected.contentBytes !== found.contentBytes) {
    differences.push(`message content: ${expected.contentBytes} bytes in the source, ${found.contentBytes} in the target`);
  }
  return differences.join('; ');
}

/** `3 keys, 12 chats, 240 messages, 1 chat purge`. */
export function describeCounts(counts: Record<string, number>): string {
  const nouns: Record<string, string> = { ApiKey: 'key', Chat: 'chat', Message: 'message', ChatPurge: 'chat purge' };
  return COPIED_TABLES.map((table) => plural(counts[table.name] ?? 0, nouns[table.name]!)).join(', ');
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function columnList(table: CopiedTable): string {
  return table.columns.map(([name]) => `"${name}"`).join(', ');
}
