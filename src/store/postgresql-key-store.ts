import type { ApiKeyRecord, KeyStore } from '../auth/api-keys';
import type { PostgresqlKeyCache } from './postgresql-key-cache';
import type { PostgresqlSql } from './postgresql-sql';

const KEY_COLUMNS = `"id", "name", "prefix", "hash", "createdAt", "revokedAt"`;

/**
 * The transaction-scoped advisory lock that makes the first key's check and insert one step
 * across processes ("lss_" in ASCII; the migrator's lock is another number).
 */
const FIRST_KEY_LOCK = 0x6c73735f;

type NewKey = Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>;

interface KeyRow extends NewKey {
  createdAt: string;
  revokedAt: string | null;
}

/** API keys on PostgreSQL; a serving process keeps the keys it has read in `cache`. */
export class PostgresqlKeyStore implements KeyStore {
  constructor(
    private readonly sql: PostgresqlSql,
    private readonly cache?: PostgresqlKeyCache,
  ) {}

  async insertKey(record: NewKey): Promise<ApiKeyRecord> {
    const [row] = await this.sql.rows<KeyRow>(
      `INSERT INTO "ApiKey" ("id", "name", "prefix", "hash", "createdAt") VALUES ($1, $2, $3, $4, $5) RETURNING ${KEY_COLUMNS}`,
      record.id,
      record.name,
      record.prefix,
      record.hash,
      new Date(),
    );
    this.cache?.forget(record.prefix);
    return toKey(row!);
  }

  findKeysByPrefix(prefix: string): Promise<ApiKeyRecord[]> {
    const read = async () => (await this.sql.rows<KeyRow>(`SELECT ${KEY_COLUMNS} FROM "ApiKey" WHERE "prefix" = $1`, prefix)).map(toKey);
    return this.cache ? this.cache.lookup(prefix, read) : read();
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return (await this.sql.rows<KeyRow>(`SELECT ${KEY_COLUMNS} FROM "ApiKey" ORDER BY "createdAt", "id"`)).map(toKey);
  }

  async revokeKey(id: string): Promise<ApiKeyRecord | null> {
    // Revoking twice keeps the first time.
    const [row] = await this.sql.rows<KeyRow>(
      `UPDATE "ApiKey" SET "revokedAt" = COALESCE("revokedAt", $2) WHERE "id" = $1 RETURNING ${KEY_COLUMNS}`,
      id,
      new Date(),
    );
    if (!row) return null;
    this.cache?.forget(row.prefix);
    return toKey(row);
  }

  /**
   * Under READ COMMITTED each statement takes a new snapshot: the INSERT, run once the lock is
   * held, sees the key of any process that held it before, so only the first inserts.
   */
  insertFirstKey(record: NewKey): Promise<ApiKeyRecord | undefined> {
    return this.sql.transaction(async (transaction) => {
      await transaction.execute('SELECT pg_advisory_xact_lock($1::bigint)', FIRST_KEY_LOCK);
      const [row] = await transaction.rows<KeyRow>(
        `INSERT INTO "ApiKey" ("id", "name", "prefix", "hash", "createdAt")
         SELECT $1::text, $2::text, $3::text, $4::text, $5::timestamptz WHERE NOT EXISTS (SELECT 1 FROM "ApiKey")
         RETURNING ${KEY_COLUMNS}`,
        record.id,
        record.name,
        record.prefix,
        record.hash,
        new Date(),
      );
      return row && toKey(row);
    });
  }
}

function toKey(row: KeyRow): ApiKeyRecord {
  return { ...row, createdAt: new Date(row.createdAt), revokedAt: row.revokedAt === null ? null : new Date(row.revokedAt) };
}
