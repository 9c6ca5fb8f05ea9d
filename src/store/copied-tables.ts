/**
 * The tables `db:copy` moves from SQLite to PostgreSQL, their columns, and how a SQLite value
 * becomes a PostgreSQL one. InstanceLease is left out on purpose: a lease is the live state of a
 * running server, not data.
 */

/** How a column's SQLite value is read; also the PostgreSQL array type it is sent as. */
export type ColumnType = 'text' | 'integer' | 'bigint' | 'boolean' | 'timestamptz';

export interface CopiedTable {
  name: string;
  /** The key the rows are read in, so that a failure names a row and inserts follow the source. */
  orderBy: string;
  columns: ReadonlyArray<readonly [name: string, type: ColumnType]>;
}

export const COPIED_TABLES: readonly CopiedTable[] = [
  {
    name: 'ApiKey',
    orderBy: '"id"',
    columns: [
      ['id', 'text'],
      ['name', 'text'],
      ['prefix', 'text'],
      ['hash', 'text'],
      ['createdAt', 'timestamptz'],
      ['revokedAt', 'timestamptz'],
    ],
  },
  {
    name: 'Chat',
    orderBy: '"ownerId", "id"',
    columns: [
      ['id', 'text'],
      ['ownerId', 'text'],
      ['title', 'text'],
      ['titleSource', 'text'],
      ['systemPrompt', 'text'],
      ['createdAt', 'timestamptz'],
      ['updatedAt', 'timestamptz'],
      ['messageCount', 'integer'],
      ['lastReplyId', 'text'],
      ['lastReplyStatus', 'text'],
      ['baseSeq', 'bigint'],
    ],
  },
  {
    name: 'Message',
    orderBy: '"seq"',
    columns: [
      ['seq', 'bigint'],
      ['id', 'text'],
      ['clientId', 'text'],
      ['ownerId', 'text'],
      ['chatId', 'text'],
      ['role', 'text'],
      ['content', 'text'],
      ['status', 'text'],
      ['finishReason', 'text'],
      ['tokenCount', 'integer'],
      ['promptTokens', 'integer'],
      ['completionTokens', 'integer'],
      ['totalTokens', 'integer'],
      ['usageEstimated', 'boolean'],
      ['model', 'text'],
      ['timeToFirstTokenMs', 'integer'],
      ['durationMs', 'integer'],
      ['systemPromptHash', 'text'],
      ['instanceId', 'text'],
      ['createdAt', 'timestamptz'],
      ['updatedAt', 'timestamptz'],
    ],
  },
  {
    name: 'ChatPurge',
    orderBy: '"ownerId", "chatId", "upToSeq"',
    columns: [
      ['ownerId', 'text'],
      ['chatId', 'text'],
      ['upToSeq', 'bigint'],
      ['deletedAt', 'timestamptz'],
    ],
  },
];

/** Tables that exist in both engines and are deliberately not copied. */
export const SKIPPED_TABLES = ['InstanceLease'];

/** SQLite's CURRENT_TIMESTAMP (a column default): UTC without a zone. */
const SQLITE_CURRENT_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$/;

/**
 * A SQLite value as PostgreSQL takes it: timestamps (Prisma's ISO text, SQLite's own
 * `YYYY-MM-DD HH:MM:SS` in UTC, or epoch milliseconds) as ISO text in UTC, 0/1 as booleans,
 * U+0000 in text as U+FFFD.
 * @throws Error naming the value when it is not of the column's type.
 */
export function toPostgresValue(value: unknown, type: ColumnType): unknown {
  if (value === null) return null;
  if (type === 'boolean') {
    if (value === 0 || value === 1) return value === 1;
    throw new Error(`${shown(value)} is not a boolean (0 or 1)`);
  }
  if (type === 'timestamptz') {
    const text = typeof value === 'string' && SQLITE_CURRENT_TIMESTAMP.test(value) ? `${value.replace(' ', 'T')}Z` : value;
    const time = typeof text === 'string' || typeof text === 'number' ? new Date(text) : new Date(Number.NaN);
    if (Number.isNaN(time.getTime())) throw new Error(`${shown(value)} is not a timestamp`);
    return time.toISOString();
  }
  if (type === 'text' ? typeof value !== 'string' : !Number.isSafeInteger(value)) {
    throw new Error(`${shown(value)} is not ${type === 'text' ? 'text' : 'an integer'}`);
  }
  // PostgreSQL's text cannot hold U+0000, which older releases stored on SQLite: it becomes
  // U+FFFD, as the service now does with a model's text.
  if (type === 'text' && (value as string).includes('\u0000')) return (value as string).replaceAll('\u0000', '\uFFFD');
  return value;
}

/** A value as an error message shows it: short, and never a blob's bytes. */
function shown(value: unknown): string {
  if (Buffer.isBuffer(value)) return `a blob of ${value.length} bytes`;
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
