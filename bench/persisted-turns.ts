import Database from 'better-sqlite3';
import { Client } from 'pg';

/**
 * How many of `chatIds` have their assistant reply stored as completed with exactly
 * `expectedText`: a turn counts for turns/s only if the service really persisted it.
 *
 * Read straight from the service's database (a SQLite file read-only, where WAL lets it read
 * while the service writes; or the PostgreSQL database), so the check adds no load to the
 * service's HTTP side.
 */
export async function countPersistedReplies(databaseUrl: string, chatIds: string[], expectedText: string): Promise<number> {
  if (chatIds.length === 0) return 0;
  const rows = databaseUrl.startsWith('file:') ? readSqlite(databaseUrl.slice('file:'.length), chatIds) : await readPostgresql(databaseUrl, chatIds);
  return rows.filter((row) => row.status === 'completed' && row.content === expectedText).length;
}

interface ReplyRow {
  content: string;
  status: string;
}

function readSqlite(databasePath: string, chatIds: string[]): ReplyRow[] {
  const database = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    return database
      .prepare(`SELECT content, status FROM "Message" WHERE role = 'assistant' AND chatId IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(chatIds)) as ReplyRow[];
  } finally {
    database.close();
  }
}

async function readPostgresql(databaseUrl: string, chatIds: string[]): Promise<ReplyRow[]> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const result = await client.query<ReplyRow>(`SELECT content, status FROM "Message" WHERE role = 'assistant' AND "chatId" = ANY($1::text[])`, [chatIds]);
    return result.rows;
  } finally {
    await client.end();
  }
}
