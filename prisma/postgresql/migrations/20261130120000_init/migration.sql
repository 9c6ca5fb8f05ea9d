-- The schema as of the SQLite migrations up to 20261130000000_chat_ids_per_owner, in one step.
-- Written by hand (Prisma's `migrate diff` needs its native engine); the schema drift test
-- compares the database it makes with prisma/models.prisma.

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" TIMESTAMPTZ(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Chat" (
    "id" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL DEFAULT 'local',
    "title" TEXT,
    "titleSource" TEXT,
    "systemPrompt" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Chat_pkey" PRIMARY KEY ("ownerId", "id")
);

-- CreateTable
CREATE TABLE "Message" (
    "seq" BIGSERIAL NOT NULL,
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
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Message_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "ApiKey_prefix_idx" ON "ApiKey"("prefix");

-- CreateIndex
CREATE INDEX "Chat_ownerId_updatedAt_id_idx" ON "Chat"("ownerId", "updatedAt", "id");

-- CreateIndex
CREATE UNIQUE INDEX "Message_id_key" ON "Message"("id");

-- CreateIndex
CREATE INDEX "Message_ownerId_chatId_seq_idx" ON "Message"("ownerId", "chatId", "seq");

-- AddForeignKey
ALTER TABLE "Message" ADD CONSTRAINT "Message_ownerId_chatId_fkey" FOREIGN KEY ("ownerId", "chatId") REFERENCES "Chat"("ownerId", "id") ON DELETE CASCADE ON UPDATE CASCADE;
