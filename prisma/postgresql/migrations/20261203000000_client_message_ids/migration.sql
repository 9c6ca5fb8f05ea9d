-- Messages keep the id their client gave them (the AI SDK names its messages), unique within the
-- chat only: two chats, or two owners, may use the same id. The row's own "id" stays the
-- service's, unique in the database.
ALTER TABLE "Message" ADD COLUMN "clientId" TEXT;
CREATE INDEX "Message_ownerId_chatId_clientId_idx" ON "Message"("ownerId", "chatId", "clientId");
