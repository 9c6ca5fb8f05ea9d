import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { titleFromMessage } from '../src/chat/titles';
import { sqliteTime } from '../src/store/sqlite-chat-statements';
import {
  ASSISTANT_TOKENS,
  assistantText,
  PROMPT_TOKENS,
  SEED_INSTANCE,
  SEED_MODEL,
  SEED_PROMPT_HASH,
  USER_TOKENS,
  userText,
  type ChatGroup,
  type SeedKey,
  type Seeder,
} from './scale-seed';

/** Chats written per transaction: a few thousand rows, so that a reader is never shut out for long. */
const CHATS_PER_TRANSACTION = 200;

/**
 * Seeds a migrated SQLite file with prepared inserts, many rows per transaction, on a connection
 * of its own beside the service (WAL: the service reads and writes meanwhile). Timestamps and
 * booleans as the service writes them: `…+00:00` ISO text, 0/1.
 */
export class SqliteSeeder implements Seeder {
  private readonly database: Database.Database;
  private readonly statements;

  constructor(databasePath: string) {
    this.database = new Database(databasePath, { fileMustExist: true, timeout: 10_000 });
    // This connection's commits need not reach the disk: a lost seed is seeded again.
    this.database.pragma('synchronous = OFF');
    this.statements = {
      key: this.database.prepare(`INSERT INTO "ApiKey" ("id", "name", "prefix", "hash", "createdAt") VALUES (?, ?, ?, ?, ?)`),
      chat: this.database.prepare(
        `INSERT INTO "Chat" ("id", "ownerId", "title", "titleSource", "systemPrompt", "createdAt", "updatedAt", "messageCount",
           "lastReplyId", "lastReplyStatus", "baseSeq")
         VALUES (?, ?, ?, 'auto', NULL, ?, ?, ?, ?, 'completed', 0)`,
      ),
      user: this.database.prepare(
        `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "tokenCount", "usageEstimated", "createdAt", "updatedAt")
         VALUES (?, ?, ?, 'user', ?, 'completed', ${USER_TOKENS}, 0, ?, ?)`,
      ),
      assistant: this.database.prepare(
        `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "finishReason", "tokenCount", "promptTokens",
           "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs", "systemPromptHash",
           "instanceId", "createdAt", "updatedAt")
         VALUES (?, ?, ?, 'assistant', ?, 'completed', 'stop', ${ASSISTANT_TOKENS}, ${PROMPT_TOKENS}, ${ASSISTANT_TOKENS},
           ${PROMPT_TOKENS + ASSISTANT_TOKENS}, 0, '${SEED_MODEL}', 320, 910, '${SEED_PROMPT_HASH}', '${SEED_INSTANCE}', ?, ?)`,
      ),
      count: this.database.prepare<[string, string], { count: number }>(`SELECT COUNT(*) AS "count" FROM "Message" WHERE "ownerId" = ? AND "chatId" = ?`),
      countAll: this.database.prepare<[], { count: number }>(`SELECT COUNT(*) AS "count" FROM "Message"`),
    };
  }

  async insertKey(key: SeedKey): Promise<void> {
    this.statements.key.run(key.id, key.name, key.prefix, key.hash, sqliteTime(new Date()));
  }

  async insertChats(group: ChatGroup): Promise<string[]> {
    const ids: string[] = [];
    const write = this.database.transaction((first: number, last: number) => {
      for (let index = first; index < last; index++) ids.push(this.insertChat(group, index));
    });
    for (let first = 0; first < group.count; first += CHATS_PER_TRANSACTION) write(first, Math.min(group.count, first + CHATS_PER_TRANSACTION));
    return ids;
  }

  /** One chat: its messages a second apart up to its last activity, then its row. */
  private insertChat(group: ChatGroup, index: number): string {
    const { ownerId, pairs } = group;
    const chatId = randomUUID();
    const updatedAt = group.firstAt.getTime() + index * group.stepMs;
    const at = (message: number) => sqliteTime(new Date(updatedAt - (2 * pairs - 1 - message) * 1000));
    let replyId = '';
    for (let k = 0; k < pairs; k++) {
      const asked = at(2 * k);
      this.statements.user.run(randomUUID(), ownerId, chatId, userText(k), asked, asked);
      replyId = randomUUID();
      const answered = at(2 * k + 1);
      this.statements.assistant.run(replyId, ownerId, chatId, assistantText(k), answered, answered);
    }
    this.statements.chat.run(chatId, ownerId, titleFromMessage(userText(0)), at(0), at(2 * pairs - 1), 2 * pairs, replyId);
    return chatId;
  }

  async countMessages(ownerId: string, chatId: string): Promise<number> {
    return this.statements.count.get(ownerId, chatId)!.count;
  }

  async countAllMessages(): Promise<number> {
    return this.statements.countAll.get()!.count;
  }

  /** The seeded pages go from the WAL into the file; the WAL is emptied. */
  async settle(): Promise<void> {
    this.database.pragma('wal_checkpoint(TRUNCATE)');
  }

  async close(): Promise<void> {
    this.database.close();
  }
}
