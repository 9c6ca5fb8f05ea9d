import type Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../auth/api-keys';
import { timestamp } from './sqlite-chat-statements';

const KEY_COLUMNS = `"id", "name", "prefix", "hash", "createdAt", "revokedAt"`;

interface KeyRow extends Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'> {
  createdAt: string;
  revokedAt: string | null;
}

type NewKey = Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>;

/** The API key queries of the SQLite store, prepared once on its connection. */
export class SqliteKeyStatements {
  private readonly statements;
  private readonly insertIfNone;

  constructor(database: Database.Database) {
    const prepare = <Row = unknown>(sql: string) => database.prepare<unknown[], Row>(sql);
    this.statements = {
      insert: prepare<KeyRow>(
        `INSERT INTO "ApiKey" ("id", "name", "prefix", "hash", "createdAt") VALUES (@id, @name, @prefix, @hash, @now) RETURNING ${KEY_COLUMNS}`,
      ),
      any: prepare<{ found: number }>(`SELECT 1 AS "found" FROM "ApiKey" LIMIT 1`),
      byPrefix: prepare<KeyRow>(`SELECT ${KEY_COLUMNS} FROM "ApiKey" WHERE "prefix" = ?`),
      all: prepare<KeyRow>(`SELECT ${KEY_COLUMNS} FROM "ApiKey" ORDER BY "createdAt", rowid`),
      byId: prepare<KeyRow>(`SELECT ${KEY_COLUMNS} FROM "ApiKey" WHERE "id" = ?`),
      revoke: prepare(`UPDATE "ApiKey" SET "revokedAt" = ? WHERE "id" = ? AND "revokedAt" IS NULL`),
    };
    const s = this.statements;
    this.insertIfNone = database.transaction((key: NewKey, now: string) => (s.any.get() ? undefined : s.insert.get({ ...key, now })));
  }

  insertKey(key: NewKey): ApiKeyRecord {
    return toKey(this.statements.insert.get({ ...key, now: timestamp() })!);
  }

  /** Inserts `key` only when there is no key at all, in one write transaction. */
  insertFirstKey(key: NewKey): ApiKeyRecord | undefined {
    const row = this.insertIfNone.immediate(key, timestamp());
    return row && toKey(row);
  }

  findKeysByPrefix(prefix: string): ApiKeyRecord[] {
    return this.statements.byPrefix.all(prefix).map(toKey);
  }

  listKeys(): ApiKeyRecord[] {
    return this.statements.all.all().map(toKey);
  }

  /** Marks the key revoked (a revoked key keeps its first revocation time); null if there is no such key. */
  revokeKey(id: string): ApiKeyRecord | null {
    this.statements.revoke.run(timestamp(), id);
    const row = this.statements.byId.get(id);
    return row ? toKey(row) : null;
  }

}

function toKey(row: KeyRow): ApiKeyRecord {
  return { ...row, createdAt: new Date(row.createdAt), revokedAt: row.revokedAt === null ? null : new Date(row.revokedAt) };
}
