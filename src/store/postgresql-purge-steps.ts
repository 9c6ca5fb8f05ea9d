import type { PendingPurge, PurgeSteps } from './deleted-chat-purge';
import type { SqlRunner } from './postgresql-sql';

/** Messages removed per statement: small enough that no statement holds locks or a connection for long. */
const BATCH_SIZE = 1000;

const PENDING_PURGES = `SELECT "ownerId", "chatId", "upToSeq" FROM "ChatPurge" ORDER BY "deletedAt", "ownerId", "chatId"`;

/** $1 ownerId, $2 chatId, $3 upToSeq, $4 batch size. By the index on (ownerId, chatId, seq). */
const DELETE_BATCH = `DELETE FROM "Message" WHERE "seq" IN (
  SELECT "seq" FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2 AND "seq" <= $3::bigint ORDER BY "seq" LIMIT $4::int
)`;

const PURGE_DONE = `DELETE FROM "ChatPurge" WHERE "ownerId" = $1 AND "chatId" = $2 AND "upToSeq" = $3::bigint`;

/** The purge's statements on PostgreSQL. */
export function postgresqlPurgeSteps(sql: SqlRunner): PurgeSteps {
  const key = (purge: PendingPurge) => [purge.ownerId, purge.chatId, String(purge.upToSeq)] as const;
  return {
    pending: () => sql.rows<PendingPurge>(PENDING_PURGES),
    removeBatch: (purge) => sql.execute(DELETE_BATCH, ...key(purge), BATCH_SIZE),
    finish: async (purge) => {
      await sql.execute(PURGE_DONE, ...key(purge));
    },
  };
}
