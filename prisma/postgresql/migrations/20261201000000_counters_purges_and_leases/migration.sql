-- Costs that do not grow with the data, and replies owned by an instance:
-- * "Chat" keeps its message count and its newest reply (id and status), so that listing chats
--   reads the page's rows only; they are filled here from the messages.
-- * "Message" loses its foreign key to "Chat": a deleted chat's row goes at once and its messages
--   are removed afterwards in batches ("ChatPurge"); "baseSeq" hides them from a new chat of the
--   same id meanwhile.
-- * Replies record the instance that generated them ("instanceId"), and "InstanceLease" says
--   which instances are alive.

-- AlterTable
ALTER TABLE "Chat" ADD COLUMN "messageCount" INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN "lastReplyId" TEXT,
    ADD COLUMN "lastReplyStatus" TEXT,
    ADD COLUMN "baseSeq" BIGINT NOT NULL DEFAULT 0;

UPDATE "Chat" c SET "messageCount" = counts."messageCount"
FROM (SELECT "ownerId", "chatId", COUNT(*)::INTEGER AS "messageCount" FROM "Message" GROUP BY "ownerId", "chatId") counts
WHERE c."ownerId" = counts."ownerId" AND c."id" = counts."chatId";

UPDATE "Chat" c SET "lastReplyId" = last."id", "lastReplyStatus" = last."status"
FROM (SELECT DISTINCT ON ("ownerId", "chatId") "ownerId", "chatId", "id", "status" FROM "Message"
      WHERE "role" = 'assistant' ORDER BY "ownerId", "chatId", "seq" DESC) last
WHERE c."ownerId" = last."ownerId" AND c."id" = last."chatId";

-- DropForeignKey
ALTER TABLE "Message" DROP CONSTRAINT "Message_ownerId_chatId_fkey";

-- AlterTable
ALTER TABLE "Message" ADD COLUMN "instanceId" TEXT;

-- CreateIndex
CREATE INDEX "Message_status_instanceId_idx" ON "Message"("status", "instanceId");

-- CreateTable
CREATE TABLE "ChatPurge" (
    "ownerId" TEXT NOT NULL,
    "chatId" TEXT NOT NULL,
    "upToSeq" BIGINT NOT NULL,
    "deletedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ChatPurge_pkey" PRIMARY KEY ("ownerId", "chatId", "upToSeq")
);

-- CreateTable
CREATE TABLE "InstanceLease" (
    "instanceId" TEXT NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "InstanceLease_pkey" PRIMARY KEY ("instanceId")
);
