import Database from 'better-sqlite3';

/**
 * How many of `chatIds` have their assistant reply stored as completed with exactly
 * `expectedText`: a turn counts for turns/s only if the service really persisted it.
 *
 * Read straight from the service's SQLite file (read-only; WAL lets it read while the service
 * writes), so the check adds no load to the service's HTTP side.
 */
export function countPersistedReplies(databasePath: string, chatIds: string[], expectedText: string): number {
  if (chatIds.length === 0) return 0;
  const database = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const rows = database
      .prepare(`SELECT content, status FROM "Message" WHERE role = 'assistant' AND chatId IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(chatIds)) as Array<{ content: string; status: string }>;
    return rows.filter((row) => row.status === 'completed' && row.content === expectedText).length;
  } finally {
    database.close();
  }
}
