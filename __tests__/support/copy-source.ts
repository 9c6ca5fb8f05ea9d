/**
 * A SQLite database to copy, made as the service makes one: every SQLite migration applied to a
 * temp file, then rows written raw in the form the stores write them (timestamps as Prisma's ISO
 * text with `+00:00`, booleans as 0/1). The rows are given as PostgreSQL should hold them after a
 * copy (timestamps as ISO text in UTC, booleans, numbers), so that a test compares the target
 * with them directly.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { Client, types } from 'pg';
import { PROJECT_ROOT } from '../../src/build-service';
import { migrateSqlite } from '../../src/store/migrate-sqlite';

export type Row = Record<string, string | number | boolean | null>;
export type Tables = Record<'ApiKey' | 'Chat' | 'Message' | 'ChatPurge' | 'InstanceLease', Row[]>;

/** Each table's key, the order its rows are compared in. */
export const ORDER_BY: Record<keyof Tables, string> = {
  ApiKey: '"id"',
  Chat: '"ownerId", "id"',
  Message: '"seq"',
  ChatPurge: '"ownerId", "chatId", "upToSeq"',
  InstanceLease: '"instanceId"',
};

const T0 = Date.parse('2026-11-28T09:00:00.000Z');
/** A timestamp `seconds` after a fixed start, with milliseconds, as ISO text. */
const at = (seconds: number) => new Date(T0 + seconds * 1000 + 123).toISOString();

function message(seq: number, owner: string, chatId: string, fields: Partial<Row>): Row {
  return {
    seq,
    id: `m-${seq}`,
    ownerId: owner,
    chatId,
    role: 'user',
    content: `message ${seq}`,
    status: 'completed',
    finishReason: null,
    tokenCount: 3,
    promptTokens: null,
    completionTokens: null,
    totalTokens: null,
    usageEstimated: false,
    model: null,
    timeToFirstTokenMs: null,
    durationMs: null,
    systemPromptHash: null,
    instanceId: null,
    clientId: null,
    createdAt: at(seq),
    updatedAt: at(seq),
    ...fields,
  };
}

const reply = (usage: [number, number], estimated: boolean): Partial<Row> => ({
  role: 'assistant',
  model: 'gpt-4o-mini',
  systemPromptHash: 'c'.repeat(64),
  promptTokens: usage[0],
  completionTokens: usage[1],
  totalTokens: usage[0] + usage[1],
  usageEstimated: estimated,
  timeToFirstTokenMs: 180,
  durationMs: 2400,
});

/**
 * Three keys (one revoked), chats of two owners and "local", messages of every status with usage
 * counted and estimated, tied createdAt values, gaps in seq, and a deleted chat still being purged
 * whose id was taken again by a new chat (baseSeq 6).
 */
export function sampleTables(): Tables {
  return {
    ApiKey: [
      { id: 'key-a', name: 'laptop', prefix: 'lss_aaaaaaaa', hash: 'a'.repeat(64), createdAt: '2026-11-20T08:00:00.000Z', revokedAt: null },
      { id: 'key-b', name: 'ci', prefix: 'lss_bbbbbbbb', hash: 'b'.repeat(64), createdAt: '2026-11-21T09:30:15.250Z', revokedAt: null },
      { id: 'key-c', name: 'old', prefix: 'lss_cccccccc', hash: 'd'.repeat(64), createdAt: '2026-11-19T07:00:00.000Z', revokedAt: '2026-11-25T10:00:00.999Z' },
    ],
    Chat: [
      chat('key-a', 'chat-1', { title: 'Trip plans', titleSource: 'auto', systemPrompt: 'Be brief.', messageCount: 4, lastReplyId: 'm-4', lastReplyStatus: 'completed' }),
      chat('key-a', 'chat-2', { title: 'Again', titleSource: 'user', messageCount: 2, lastReplyId: 'm-10', lastReplyStatus: 'streaming', baseSeq: 6 }),
      chat('key-b', 'chat-1', { title: 'Same id, other owner', titleSource: 'model', messageCount: 6, lastReplyId: 'm-15', lastReplyStatus: 'failed' }),
      chat('local', 'chat-3', {}),
    ],
    Message: [
      message(1, 'key-a', 'chat-1', { content: 'He said "hi", {ok} \\ back\nslash, café 🎉', createdAt: at(1), updatedAt: at(1) }),
      message(2, 'key-a', 'chat-1', { ...reply([12, 30], false), content: 'NULL', finishReason: 'stop', createdAt: at(1), updatedAt: at(2) }),
      message(3, 'key-a', 'chat-1', { content: 'Thanks!', clientId: 'Xy7rT0aBcD3eFgH1' }),
      message(4, 'key-a', 'chat-1', { ...reply([50, 8], true), finishReason: 'length' }),
      // The deleted chat-2 of key-a, still being purged (ChatPurge up to seq 6).
      message(5, 'key-a', 'chat-2', {}),
      message(6, 'key-a', 'chat-2', { ...reply([5, 5], false), finishReason: 'stop' }),
      message(7, 'key-b', 'chat-1', {}),
      message(8, 'key-b', 'chat-1', { ...reply([9, 2], true), status: 'cancelled', finishReason: null }),
      message(9, 'key-a', 'chat-2', { createdAt: at(9), updatedAt: at(9) }),
      message(10, 'key-a', 'chat-2', { ...reply([0, 0], false), status: 'streaming', content: '', promptTokens: null, completionTokens: null,
        totalTokens: null, timeToFirstTokenMs: null, durationMs: null, tokenCount: null, instanceId: 'instance-1', createdAt: at(9) }),
      message(11, 'key-b', 'chat-1', {}),
      message(12, 'key-b', 'chat-1', { ...reply([20, 4], true), status: 'interrupted', instanceId: 'instance-0' }),
      message(14, 'key-b', 'chat-1', { content: 'x'.repeat(5000) }),
      message(15, 'key-b', 'chat-1', { ...reply([30, 0], true), status: 'failed', content: '', finishReason: 'error' }),
    ],
    ChatPurge: [{ ownerId: 'key-a', chatId: 'chat-2', upToSeq: 6, deletedAt: at(8) }],
    InstanceLease: [{ instanceId: 'instance-1', startedAt: at(0), expiresAt: at(60) }],
  };
}

function chat(ownerId: string, id: string, fields: Partial<Row>): Row {
  return {
    id,
    ownerId,
    title: null,
    titleSource: null,
    systemPrompt: null,
    createdAt: at(0),
    updatedAt: at(20),
    messageCount: 0,
    lastReplyId: null,
    lastReplyStatus: null,
    baseSeq: 0,
    ...fields,
  };
}

/**
 * `sampleTables()` written to a new file at `databasePath`, key-c's createdAt as SQLite's own
 * CURRENT_TIMESTAMP writes it (a column default): UTC text without a zone.
 */
export function writeSampleSource(databasePath: string): Tables {
  const tables = sampleTables();
  writeSqliteSource(databasePath, tables);
  const database = new Database(databasePath);
  database.prepare(`UPDATE "ApiKey" SET "createdAt" = '2026-11-19 07:00:00' WHERE "id" = 'key-c'`).run();
  database.close();
  return tables;
}

/** Applies every SQLite migration to a new file at `databasePath` and writes `tables` into it. */
export function writeSqliteSource(databasePath: string, tables: Tables): void {
  migrateSqlite(databasePath, path.join(PROJECT_ROOT, 'prisma', 'migrations'));
  const database = new Database(databasePath);
  try {
    database.transaction(() => {
      for (const [table, rows] of Object.entries(tables)) {
        for (const row of rows) {
          const columns = Object.keys(row);
          database
            .prepare(`INSERT INTO "${table}" (${columns.map((name) => `"${name}"`).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`)
            .run(...columns.map((name) => asStored(row[name]!)));
        }
      }
    })();
  } finally {
    database.close();
  }
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A value as the stores write it to SQLite. */
function asStored(value: string | number | boolean | null): string | number | null {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && ISO_UTC.test(value)) return value.replace('Z', '+00:00');
  return value;
}

/** A PostgreSQL client whose 64-bit integers come back as numbers (the tests' values are small). */
export function targetClient(url: string): Client {
  return new Client({
    connectionString: url,
    types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : types.getTypeParser(oid, format))) as typeof types.getTypeParser },
  });
}

/** Every row of `table` in the target, in key order, with Dates as ISO text. */
export async function targetRows(client: Client, table: keyof Tables): Promise<Row[]> {
  const { rows } = await client.query(`SELECT * FROM "${table}" ORDER BY ${ORDER_BY[table]}`);
  return rows.map((row: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(row).map(([name, value]) => [name, value instanceof Date ? value.toISOString() : value])),
  ) as Row[];
}
