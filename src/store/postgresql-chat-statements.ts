/**
 * The chat store's statements on PostgreSQL, each written once. Parameters are positional ($1…);
 * every statement is one round trip, and the hot path of a turn (beginTurn, saveProgress,
 * finishReply, loadRecent) one statement each.
 */
import { CHAT_COLUMNS, MESSAGE_COLUMNS } from './stored-rows';

/**
 * Where the messages of chat `c` start. `baseSeq` is fixed when the chat is created; a purge the
 * creating statement could not see yet (a delete that committed while it waited for the old row)
 * is counted too, so a new chat never shows the messages of a deleted one of the same id.
 */
const VISIBLE_ABOVE = `GREATEST(c."baseSeq", COALESCE((SELECT MAX(p."upToSeq") FROM "ChatPurge" p
  WHERE p."ownerId" = c."ownerId" AND p."chatId" = c."id"), 0))`;

/**
 * $1 ownerId, $2 chatId, $3 title, $4 systemPrompt, $5 whether the turn sets the prompt, $6 now,
 * $7 reply id, $8 reply instanceId, then the turn's rows as arrays, in order: $9 id, $10 role,
 * $11 content, $12 status, $13 tokenCount, $14 model, $15 systemPromptHash (the reply's null: the
 * SHA-256 of the prompt in force), $16 instanceId; then $17 the prompt of a chat that has none,
 * $18 the most UTF-8 bytes the prompt in force may have for the turn to be written (null: no
 * bound), $19 how many of the chat's newest messages to read, $20 the rows' client-given ids.
 *
 * Returns the chat as it was before the turn, as LOAD_RECENT does (its head on every row, its
 * messages newest first, or one row of nulls), every row also carrying `chatExists`, `allowed`
 * (the prompt was within its bound) and `stored` (1 when the turn was written; 0 when not allowed
 * or the chat is busy: nothing was written). The read costs no round trip of its own, and it is
 * never of the turn's own rows: every part of the statement sees one snapshot, taken before its
 * writes. (Sent beside the write on a second connection instead, the read made the turn's start
 * slower on the benchmark machine, not faster: two backends woken at once on two cores.)
 *
 * Race safety, under READ COMMITTED: the busy decision is ON CONFLICT's WHERE, which PostgreSQL
 * evaluates on the Chat row's latest committed version after locking it, so a turn that committed
 * while this one waited is seen (`lastReplyStatus` = 'streaming'). Its EXISTS reads Message with
 * this statement's older snapshot; a reply committed after that snapshot is invisible there, which
 * can only make the chat look busy, never free: of two instances racing on one chat, the second
 * always finds the first's reply streaming and not its own. The other sub-statements write only
 * when the upsert returned its row.
 *
 * `previous` (snapshot) names the reply to mark interrupted when the turn replaces a streaming
 * reply of its own instance. When the upsert went through on EXISTS, that reply was visible in the
 * snapshot, so the snapshot's `lastReplyId` is the latest one (only a turn changes it, to a new id).
 */
export const BEGIN_TURN = `WITH existing AS (
  SELECT "ownerId", "id", "systemPrompt", "messageCount", "baseSeq", "lastReplyId", "lastReplyStatus"
  FROM "Chat" WHERE "ownerId" = $1 AND "id" = $2
), prompt AS (
  SELECT COALESCE(CASE WHEN $5::boolean THEN $4::text END, (SELECT "systemPrompt" FROM existing), $17::text) AS "text"
), allowed AS (
  SELECT $18::int IS NULL OR octet_length("text") <= $18::int AS "ok" FROM prompt
), previous AS (
  SELECT "lastReplyId" FROM existing WHERE "lastReplyStatus" = 'streaming'
), chat AS (
  INSERT INTO "Chat" AS c ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt",
    "messageCount", "lastReplyId", "lastReplyStatus", "baseSeq")
  SELECT $2, $1, $3, 'auto', $4, $6, $6, cardinality($9::text[]), $7, 'streaming',
    (SELECT COALESCE(MAX("upToSeq"), 0) FROM "ChatPurge" WHERE "ownerId" = $1 AND "chatId" = $2)
  WHERE (SELECT "ok" FROM allowed)
  ON CONFLICT ("ownerId", "id") DO UPDATE SET
    "messageCount" = c."messageCount" + excluded."messageCount",
    "lastReplyId" = excluded."lastReplyId",
    "lastReplyStatus" = 'streaming',
    "updatedAt" = excluded."updatedAt",
    "systemPrompt" = CASE WHEN $5::boolean THEN excluded."systemPrompt" ELSE c."systemPrompt" END,
    "title" = COALESCE(c."title", excluded."title"),
    "titleSource" = CASE WHEN c."title" IS NULL THEN 'auto' ELSE c."titleSource" END
  WHERE c."lastReplyStatus" IS DISTINCT FROM 'streaming'
    OR EXISTS (SELECT 1 FROM "Message" m WHERE m."id" = c."lastReplyId" AND m."instanceId" = $8)
  RETURNING 1
), interrupted AS (
  UPDATE "Message" SET "status" = 'interrupted', "updatedAt" = $6
  WHERE "id" = (SELECT "lastReplyId" FROM previous) AND "status" = 'streaming' AND "instanceId" = $8
    AND EXISTS (SELECT 1 FROM chat)
), inserted AS (
  INSERT INTO "Message" ("id", "clientId", "ownerId", "chatId", "role", "content", "status", "tokenCount", "usageEstimated",
    "model", "systemPromptHash", "instanceId", "createdAt", "updatedAt")
  SELECT row."id", row."clientId", $1, $2, row."role", row."content", row."status", row."tokenCount", false, row."model",
    COALESCE(row."systemPromptHash", CASE WHEN row."id" = $7 THEN encode(sha256(convert_to((SELECT "text" FROM prompt), 'UTF8')), 'hex') END),
    row."instanceId", $6, $6
  FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::text[], $15::text[], $16::text[], $20::text[])
    WITH ORDINALITY AS row("id", "role", "content", "status", "tokenCount", "model", "systemPromptHash", "instanceId", "clientId", "position")
  WHERE EXISTS (SELECT 1 FROM chat)
  -- seq follows the turn's order: it is drawn as the sorted rows are inserted.
  ORDER BY row."position"
)
SELECT (SELECT "ok" FROM allowed) AS "allowed", (SELECT count(*) FROM chat)::int AS "stored",
  c."id" IS NOT NULL AS "chatExists", c."systemPrompt" AS "chatSystemPrompt", c."messageCount" AS "chatMessageCount", m.*
FROM (SELECT 1) AS one
LEFT JOIN existing c ON true
LEFT JOIN LATERAL (
  SELECT ${MESSAGE_COLUMNS} FROM "Message"
  WHERE "ownerId" = c."ownerId" AND "chatId" = c."id" AND "seq" > ${VISIBLE_ABOVE}
  ORDER BY "seq" DESC LIMIT $19::int
) m ON true`;

/** $1 messageId, $2 content, $3 now. */
export const SAVE_PROGRESS = `UPDATE "Message" SET "content" = $2, "updatedAt" = $3 WHERE "id" = $1 AND "status" = 'streaming'`;

/**
 * $1 messageId, $2 content, $3 status, $4 finishReason, $5 tokenCount, $6 promptTokens,
 * $7 completionTokens, $8 totalTokens, $9 usageEstimated, $10 timeToFirstTokenMs, $11 durationMs,
 * $12 now. The chat keeps its newest reply's status. Returns `found`: 0 when the row is gone.
 */
export const FINISH_REPLY = `WITH reply AS (
  UPDATE "Message" SET "content" = $2, "status" = $3, "finishReason" = $4, "tokenCount" = $5::int, "promptTokens" = $6::int,
    "completionTokens" = $7::int, "totalTokens" = $8::int, "usageEstimated" = $9::boolean, "timeToFirstTokenMs" = $10::int,
    "durationMs" = $11::int, "updatedAt" = $12
  WHERE "id" = $1
  RETURNING "ownerId", "chatId", "id"
), chat AS (
  UPDATE "Chat" c SET "lastReplyStatus" = $3 FROM reply
  WHERE c."ownerId" = reply."ownerId" AND c."id" = reply."chatId" AND c."lastReplyId" = reply."id"
)
SELECT count(*)::int AS "found" FROM reply`;

/**
 * $1 ownerId, $2 chatId, $3 limit. The chat's head on every row, with its newest messages (by the
 * index on ownerId, chatId, seq), newest first; no row when there is no chat, one row of nulls
 * for messages when it has none.
 */
export const LOAD_RECENT = `SELECT c."systemPrompt" AS "chatSystemPrompt", c."messageCount" AS "chatMessageCount", m.*
FROM "Chat" c
LEFT JOIN LATERAL (
  SELECT ${MESSAGE_COLUMNS} FROM "Message"
  WHERE "ownerId" = c."ownerId" AND "chatId" = c."id" AND "seq" > ${VISIBLE_ABOVE}
  ORDER BY "seq" DESC LIMIT $3
) m ON true
WHERE c."ownerId" = $1 AND c."id" = $2`;

/** $1 ownerId, $2 chatId, $3 the `before` message id (as the API shows it) or null. No row when there is no chat. */
export const MESSAGE_PAGE_START = `SELECT ${VISIBLE_ABOVE} AS "above",
  (SELECT m."seq" FROM "Message" m WHERE m."ownerId" = c."ownerId" AND m."chatId" = c."id"
     AND (m."clientId" = $3 OR (m."id" = $3 AND m."clientId" IS NULL)) AND m."seq" > ${VISIBLE_ABOVE}) AS "beforeSeq"
FROM "Chat" c WHERE c."ownerId" = $1 AND c."id" = $2`;

/**
 * $1 ownerId, $2 chatId. Locks the chat's row for a turn that changes its messages before it
 * begins (an edit, a regeneration) or names them (client-given ids): whatever it checks stays
 * true until BEGIN_TURN, in the same transaction, has run. No row when there is no chat.
 */
export const LOCK_CHAT = `SELECT c."lastReplyStatus", m."instanceId", ${VISIBLE_ABOVE} AS "above"
FROM "Chat" c LEFT JOIN "Message" m ON m."id" = c."lastReplyId"
WHERE c."ownerId" = $1 AND c."id" = $2
FOR UPDATE OF c`;

/** $1 ownerId, $2 chatId, $3 above this seq, $4 the message id as the API shows it. */
export const FIND_MESSAGE = `SELECT "seq", "role" FROM "Message"
WHERE "ownerId" = $1 AND "chatId" = $2 AND "seq" > $3::bigint AND ("clientId" = $4 OR ("id" = $4 AND "clientId" IS NULL))`;

/** $1 ownerId, $2 chatId, $3 above this seq. */
export const NEWEST_MESSAGE = `SELECT "seq", "role" FROM "Message"
WHERE "ownerId" = $1 AND "chatId" = $2 AND "seq" > $3::bigint ORDER BY "seq" DESC LIMIT 1`;

/** $1 seq, $2 content, $3 tokenCount, $4 now. */
export const EDIT_MESSAGE = `UPDATE "Message" SET "content" = $2, "tokenCount" = $3::int, "updatedAt" = $4 WHERE "seq" = $1::bigint`;

/** $1 ownerId, $2 chatId, $3 the first seq to remove. The chat's count follows. Returns `removed`. */
export const REMOVE_MESSAGES_FROM = `WITH gone AS (
  DELETE FROM "Message" WHERE "ownerId" = $1 AND "chatId" = $2 AND "seq" >= $3::bigint RETURNING 1
), counted AS (
  UPDATE "Chat" SET "messageCount" = "messageCount" - (SELECT count(*) FROM gone) WHERE "ownerId" = $1 AND "id" = $2
)
SELECT count(*)::int AS "removed" FROM gone`;

/** $1 ownerId, $2 chatId, $3 above this seq, $4 below this seq (or null), $5 limit; newest first. */
export const MESSAGE_PAGE = `SELECT ${MESSAGE_COLUMNS} FROM "Message"
WHERE "ownerId" = $1 AND "chatId" = $2 AND "seq" > $3::bigint AND ($4::bigint IS NULL OR "seq" < $4::bigint)
ORDER BY "seq" DESC LIMIT $5::int`;

/** $1 ownerId, $2 limit. By the index on (ownerId, updatedAt, id). */
export const FIRST_CHATS = `SELECT ${CHAT_COLUMNS} FROM "Chat" WHERE "ownerId" = $1
ORDER BY "updatedAt" DESC, "id" DESC LIMIT $2::int`;

/** $1 ownerId, $2 limit, $3 cursor updatedAt, $4 cursor chatId. */
export const CHATS_AFTER = `SELECT ${CHAT_COLUMNS} FROM "Chat" WHERE "ownerId" = $1 AND ("updatedAt", "id") < ($3::timestamptz, $4)
ORDER BY "updatedAt" DESC, "id" DESC LIMIT $2::int`;

/** $1 ownerId, $2 chatId. */
export const GET_CHAT = `SELECT ${CHAT_COLUMNS} FROM "Chat" WHERE "ownerId" = $1 AND "id" = $2`;

/** $1 ownerId, $2 chatId, $3 whether to set the title, $4 title, $5 whether to set the prompt, $6 prompt, $7 now. */
export const UPDATE_CHAT = `UPDATE "Chat" SET
  "title" = CASE WHEN $3::boolean THEN $4 ELSE "title" END,
  "titleSource" = CASE WHEN $3::boolean THEN 'user' ELSE "titleSource" END,
  "systemPrompt" = CASE WHEN $5::boolean THEN $6 ELSE "systemPrompt" END,
  "updatedAt" = $7
WHERE "ownerId" = $1 AND "id" = $2
RETURNING ${CHAT_COLUMNS}`;

/** $1 ownerId, $2 chatId, $3 title, $4 now. A title a user chose stays. */
export const SET_GENERATED_TITLE = `UPDATE "Chat" SET "title" = $3, "titleSource" = 'model', "updatedAt" = $4
WHERE "ownerId" = $1 AND "id" = $2 AND "titleSource" IS DISTINCT FROM 'user'`;

/**
 * $1 ownerId, $2 chatId. Removes the chat's row and records its purge. The purge covers every seq
 * drawn so far, read from the sequence itself rather than MAX(seq) in this statement's snapshot:
 * a turn that held the row until just before (this DELETE waited for it) drew seqs the snapshot
 * does not see, and those messages would outlive the purge.
 */
export const DELETE_CHAT = `WITH gone AS (
  DELETE FROM "Chat" WHERE "ownerId" = $1 AND "id" = $2 RETURNING "ownerId", "id"
)
INSERT INTO "ChatPurge" ("ownerId", "chatId", "upToSeq", "deletedAt")
SELECT "ownerId", "id", COALESCE(pg_sequence_last_value(pg_get_serial_sequence('"Message"', 'seq')::regclass), 0), now()
FROM gone`;

/**
 * $1 instanceId, $2 includeOwn, $3 now. Leases are compared by the database's clock; the chats
 * whose newest reply it was keep its new status. Returns `swept`.
 */
export const INTERRUPT_ABANDONED = `WITH swept AS (
  UPDATE "Message" m SET "status" = 'interrupted', "updatedAt" = $3
  WHERE m."status" = 'streaming' AND (
    m."instanceId" IS NULL
    OR ($2::boolean AND m."instanceId" = $1)
    OR (m."instanceId" <> $1 AND NOT EXISTS (
      SELECT 1 FROM "InstanceLease" l WHERE l."instanceId" = m."instanceId" AND l."expiresAt" > now())))
  RETURNING m."ownerId", m."chatId", m."id"
), chats AS (
  UPDATE "Chat" c SET "lastReplyStatus" = 'interrupted' FROM swept
  WHERE c."ownerId" = swept."ownerId" AND c."id" = swept."chatId" AND c."lastReplyId" = swept."id"
)
SELECT count(*)::int AS "swept" FROM swept`;

/** $1 instanceId, $2 leaseMs. By the database's clock, so that instances' clocks need not agree. */
export const RENEW_LEASE = `INSERT INTO "InstanceLease" ("instanceId", "startedAt", "expiresAt")
VALUES ($1, now(), now() + $2::int * interval '1 millisecond')
ON CONFLICT ("instanceId") DO UPDATE SET "expiresAt" = excluded."expiresAt"`;

/** $1 instanceId. */
export const RELEASE_LEASE = `DELETE FROM "InstanceLease" WHERE "instanceId" = $1`;

/** A real table read: a missing or broken schema counts as not ready. */
export const PING = `SELECT 1 FROM "Chat" LIMIT 1`;
