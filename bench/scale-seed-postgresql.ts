import { Client } from 'pg';
import { titleFromMessage } from '../src/chat/titles';
import {
  ASSISTANT_TEXT_SQL,
  ASSISTANT_TOKENS,
  PROMPT_TOKENS,
  SEED_INSTANCE,
  SEED_MODEL,
  SEED_PROMPT_HASH,
  USER_TEXT_SQL,
  USER_TOKENS,
  userText,
  type ChatGroup,
  type SeedKey,
  type Seeder,
} from './scale-seed';

/** Chats per transaction: 50,000 messages at 25 pairs, sorted in memory. */
const CHATS_PER_TRANSACTION = 1000;

/**
 * $1 ownerId, $2 pairs, $3 first chat's index, $4 chats, $5 first chat's last activity, $6 ms
 * between chats, $7 title. Each chat's messages are a second apart up to its last activity,
 * inserted in turn order so that `seq` follows it; the chat row names its newest reply.
 */
const INSERT_CHATS = `WITH chats AS (
  SELECT i, gen_random_uuid()::text AS "id", gen_random_uuid()::text AS "replyId",
    $5::timestamptz + (i * $6::bigint) * interval '1 millisecond' AS "updatedAt"
  FROM generate_series($3::int, $3::int + $4::int - 1) AS i
), messages AS (
  INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "finishReason", "tokenCount", "promptTokens",
    "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs", "systemPromptHash",
    "instanceId", "createdAt", "updatedAt")
  SELECT CASE WHEN m = 2 * $2::int - 1 THEN c."replyId" ELSE gen_random_uuid()::text END, $1, c."id",
    CASE WHEN m % 2 = 0 THEN 'user' ELSE 'assistant' END,
    CASE WHEN m % 2 = 0 THEN ${USER_TEXT_SQL} ELSE ${ASSISTANT_TEXT_SQL} END,
    'completed',
    CASE WHEN m % 2 = 1 THEN 'stop' END,
    CASE WHEN m % 2 = 0 THEN ${USER_TOKENS} ELSE ${ASSISTANT_TOKENS} END,
    CASE WHEN m % 2 = 1 THEN ${PROMPT_TOKENS} END,
    CASE WHEN m % 2 = 1 THEN ${ASSISTANT_TOKENS} END,
    CASE WHEN m % 2 = 1 THEN ${PROMPT_TOKENS + ASSISTANT_TOKENS} END,
    false,
    CASE WHEN m % 2 = 1 THEN '${SEED_MODEL}' END,
    CASE WHEN m % 2 = 1 THEN 320 END,
    CASE WHEN m % 2 = 1 THEN 910 END,
    CASE WHEN m % 2 = 1 THEN '${SEED_PROMPT_HASH}' END,
    CASE WHEN m % 2 = 1 THEN '${SEED_INSTANCE}' END,
    c."updatedAt" - (2 * $2::int - 1 - m) * interval '1 second',
    c."updatedAt" - (2 * $2::int - 1 - m) * interval '1 second'
  FROM chats c CROSS JOIN generate_series(0, 2 * $2::int - 1) AS m, LATERAL (SELECT m / 2 AS k) pair
  ORDER BY c.i, m
)
INSERT INTO "Chat" ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt", "messageCount",
  "lastReplyId", "lastReplyStatus", "baseSeq")
SELECT "id", $1, $7, 'auto', NULL, "updatedAt" - (2 * $2::int - 1) * interval '1 second', "updatedAt", 2 * $2::int,
  "replyId", 'completed', 0
FROM chats ORDER BY i
RETURNING "id"`;

/** Seeds a migrated PostgreSQL database with INSERT … SELECT over generate_series, a thousand chats per statement. */
export class PostgresqlSeeder implements Seeder {
  private constructor(private readonly client: Client) {}

  static async open(databaseUrl: string): Promise<PostgresqlSeeder> {
    const client = new Client({ connectionString: databaseUrl });
    await client.connect();
    return new PostgresqlSeeder(client);
  }

  async insertKey(key: SeedKey): Promise<void> {
    await this.client.query(`INSERT INTO "ApiKey" ("id", "name", "prefix", "hash", "createdAt") VALUES ($1, $2, $3, $4, now())`, [
      key.id,
      key.name,
      key.prefix,
      key.hash,
    ]);
  }

  async insertChats(group: ChatGroup): Promise<string[]> {
    const ids: string[] = [];
    for (let first = 0; first < group.count; first += CHATS_PER_TRANSACTION) {
      const count = Math.min(CHATS_PER_TRANSACTION, group.count - first);
      const { rows } = await this.client.query<{ id: string }>(INSERT_CHATS, [
        group.ownerId,
        group.pairs,
        first,
        count,
        group.firstAt,
        group.stepMs,
        titleFromMessage(userText(0)),
      ]);
      ids.push(...rows.map((row) => row.id));
    }
    return ids;
  }

  /** What autovacuum does soon after a bulk load: statistics for the planner, the visibility map for index-only scans. */
  async settle(): Promise<void> {
    await this.client.query('VACUUM ANALYZE');
  }

  async countMessages(ownerId: string, chatId: string): Promise<number> {
    const { rows } = await this.client.query<{ count: number }>(
      `SELECT COUNT(*)::int AS "count" FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2`,
      [ownerId, chatId],
    );
    return rows[0]!.count;
  }

  async countAllMessages(): Promise<number> {
    const { rows } = await this.client.query<{ count: number }>(`SELECT COUNT(*)::int AS "count" FROM "Message"`);
    return rows[0]!.count;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}
