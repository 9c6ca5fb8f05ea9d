-- AlterTable
ALTER TABLE "Chat" ADD COLUMN "title" TEXT;
ALTER TABLE "Chat" ADD COLUMN "titleSource" TEXT;

-- AlterTable
ALTER TABLE "Message" ADD COLUMN "durationMs" INTEGER;
ALTER TABLE "Message" ADD COLUMN "model" TEXT;
ALTER TABLE "Message" ADD COLUMN "systemPromptHash" TEXT;
ALTER TABLE "Message" ADD COLUMN "timeToFirstTokenMs" INTEGER;
ALTER TABLE "Message" ADD COLUMN "tokenCount" INTEGER;
ALTER TABLE "Message" ADD COLUMN "totalTokens" INTEGER;
ALTER TABLE "Message" ADD COLUMN "usageEstimated" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE INDEX "Chat_updatedAt_id_idx" ON "Chat"("updatedAt", "id");
