-- Chat ids become a namespace per owner: the primary key of "Chat" is ("ownerId", "id"), and each
-- message names its chat by both. SQLite cannot change a primary key in place, so both tables are
-- rebuilt and their rows copied, keeping every message's "seq" (the order of a chat).
-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Chat" (
    "id" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL DEFAULT 'local',
    "title" TEXT,
    "titleSource" TEXT,
    "systemPrompt" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,

    PRIMARY KEY ("ownerId", "id")
);
INSERT INTO "new_Chat" ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt")
SELECT "id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt" FROM "Chat";
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
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Message_ownerId_chatId_fkey" FOREIGN KEY ("ownerId", "chatId") REFERENCES "Chat" ("ownerId", "id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_Message" ("seq", "id", "ownerId", "chatId", "role", "content", "status", "finishReason", "tokenCount",
    "promptTokens", "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs",
    "systemPromptHash", "createdAt", "updatedAt")
SELECT m."seq", m."id", c."ownerId", m."chatId", m."role", m."content", m."status", m."finishReason", m."tokenCount",
    m."promptTokens", m."completionTokens", m."totalTokens", m."usageEstimated", m."model", m."timeToFirstTokenMs", m."durationMs",
    m."systemPromptHash", m."createdAt", m."updatedAt"
FROM "Message" m JOIN "Chat" c ON c."id" = m."chatId";
DROP TABLE "Message";
ALTER TABLE "new_Message" RENAME TO "Message";
DROP TABLE "Chat";
ALTER TABLE "new_Chat" RENAME TO "Chat";
CREATE UNIQUE INDEX "Message_id_key" ON "Message"("id");
CREATE INDEX "Message_ownerId_chatId_seq_idx" ON "Message"("ownerId", "chatId", "seq");
CREATE INDEX "Chat_ownerId_updatedAt_id_idx" ON "Chat"("ownerId", "updatedAt", "id");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
