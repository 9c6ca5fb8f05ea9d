-- Costs that do not grow with the data, and replies owned by an instance:
-- * "Chat" keeps its message count and its newest reply (id and status), so that listing chats
--   reads the page's rows only; they are filled here from the messages.
-- * "Message" loses its foreign key to "Chat": a deleted chat's row goes at once and its messages
--   are removed afterwards in batches ("ChatPurge"); "baseSeq" hides them from a new chat of the
--   same id meanwhile. SQLite cannot drop a constraint, so the table is rebuilt, keeping "seq".
-- * Replies record the instance that generated them ("instanceId"), and "InstanceLease" says
--   which instances are alive.
ALTER TABLE "Chat" ADD COLUMN "messageCount" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Chat" ADD COLUMN "lastReplyId" TEXT;
ALTER TABLE "Chat" ADD COLUMN "lastReplyStatus" TEXT;
ALTER TABLE "Chat" ADD COLUMN "baseSeq" INTEGER NOT NULL DEFAULT 0;

UPDATE "Chat" SET
    "messageCount" = (SELECT COUNT(*) FROM "Message" m WHERE m."ownerId" = "Chat"."ownerId" AND m."chatId" = "Chat"."id"),
    "lastReplyId" = (SELECT m."id" FROM "Message" m WHERE m."ownerId" = "Chat"."ownerId" AND m."chatId" = "Chat"."id"
        AND m."role" = 'assistant' ORDER BY m."seq" DESC LIMIT 1),
    "lastReplyStatus" = (SELECT m."status" FROM "Message" m WHERE m."ownerId" = "Chat"."ownerId" AND m."chatId" = "Chat"."id"
        AND m."role" = 'assistant' ORDER BY m."seq" DESC LIMIT 1);

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Message" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "id" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL,
    "chatId" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "finishReason" TEXT,
    "tokenCount" INTEGER,
    "promptTokens" INTEGER,
    "completionTokens" INTEGER,
    "totalTokens" INTEGER,
    "usageEstimated" BOOLEAN NOT NULL DEFAULT false,
    "model" TEXT,
    "timeToFirstTokenMs" INTEGER,
    "durationMs" INTEGER,
    "systemPromptHash" TEXT,
    "instanceId" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
);
INSERT INTO "new_Message" ("seq", "id", "ownerId", "chatId", "role", "content", "status", "finishReason", "tokenCount",
    "promptTokens", "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs",
    "systemPromptHash", "createdAt", "updatedAt")
SELECT "seq", "id", "ownerId", "chatId", "role", "content", "status", "finishReason", "tokenCount",
    "promptTokens", "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs",
    "systemPromptHash", "createdAt", "updatedAt"
FROM "Message";
DROP TABLE "Message";
ALTER TABLE "new_Message" RENAME TO "Message";
CREATE UNIQUE INDEX "Message_id_key" ON "Message"("id");
CREATE INDEX "Message_ownerId_chatId_seq_idx" ON "Message"("ownerId", "chatId", "seq");
CREATE INDEX "Message_status_instanceId_idx" ON "Message"("status", "instanceId");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateTable
CREATE TABLE "ChatPurge" (
    "ownerId" TEXT NOT NULL,
    "chatId" TEXT NOT NULL,
    "upToSeq" INTEGER NOT NULL,
    "deletedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,

    PRIMARY KEY ("ownerId", "chatId", "upToSeq")
);

-- CreateTable
CREATE TABLE "InstanceLease" (
    "instanceId" TEXT NOT NULL PRIMARY KEY,
    "startedAt" DATETIME NOT NULL,
    "expiresAt" DATETIME NOT NULL
);
