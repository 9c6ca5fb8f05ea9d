import Database from 'better-sqlite3';
import { Client, types } from 'pg';

/**
 * A connection of the test's own to a service's database, for reading rows and setting up odd
 * states. One SQL text serves both engines: quote identifiers ("Message", "chatId") and write `?`
 * for parameters (numbered `$1`, `$2`… for PostgreSQL here).
 *
 * Rows come back in the shapes SQLite gives, so that one assertion fits both engines: PostgreSQL's
 * timestamptz as the text the SQLite store writes (`2026-11-30T07:38:27.123+00:00`), booleans as
 * 0/1, and 64-bit integers (`seq`, `baseSeq`, `COUNT(*)`) as numbers.
 */
export interface SqlConnection {
  query<Row = Record<string, unknown>>(sql: string, ...parameters: unknown[]): Promise<Row[]>;
  execute(sql: string, ...parameters: unknown[]): Promise<void>;
  close(): Promise<void>;
}

export function connectSqlite(databasePath: string): SqlConnection {
  const database = new Database(databasePath);
  return {
    query: async <Row>(sql: string, ...parameters: unknown[]) => database.prepare(sql).all(...parameters) as Row[],
    execute: async (sql: string, ...parameters: unknown[]) => void database.prepare(sql).run(...parameters),
    close: async () => void database.close(),
  };
}

export async function connectPostgresql(url: string): Promise<SqlConnection> {
  const client = new Client({ connectionString: url, types: { getTypeParser: sqliteShapedParser } });
  await client.connect();
  return {
    query: async <Row>(sql: string, ...parameters: unknown[]) => (await client.query(numberParameters(sql), parameters)).rows as Row[],
    execute: async (sql: string, ...parameters: unknown[]) => void (await client.query(numberParameters(sql), parameters)),
    close: () => client.end(),
  };
}

const OID = { bool: 16, int8: 20, timestamptz: 1184 } as const;

/** pg's parser for a column type, changed where SQLite would give another shape (see SqlConnection). */
function sqliteShapedParser(oid: number, format?: 'text' | 'binary'): (text: string) => unknown {
  if (format === 'binary') return types.getTypeParser(oid, 'binary');
  switch (oid) {
    case OID.bool:
      return (text) => (text === 't' ? 1 : 0);
    case OID.int8:
      return (text) => {
        const value = Number(text);
        if (!Number.isSafeInteger(value)) throw new Error(`${text} does not fit a JavaScript number`);
        return value;
      };
    case OID.timestamptz: {
      const parseDate = types.getTypeParser(OID.timestamptz, 'text');
      return (text) => (parseDate(text) as Date).toISOString().replace('Z', '+00:00');
    }
    default:
      return types.getTypeParser(oid, 'text');
  }
}

/** `?` → `$1`, `$2`…, leaving quoted strings and identifiers alone. */
export function numberParameters(sql: string): string {
  let count = 0;
  return sql.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|\?/g, (token) => (token === '?' ? `$${(count += 1)}` : token));
}
