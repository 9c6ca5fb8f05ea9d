import { createHash, randomBytes, randomUUID } from 'node:crypto';

/**
 * What bench/scale.ts seeds, written straight into the service's database with each engine's
 * fastest bulk path, as rows the service itself would have written: a chat row keeps its message
 * count and newest reply (id, status), messages are finished user/assistant pairs in `seq` order,
 * the assistant's with usage, model, system prompt hash and instance; all owned by one API key.
 */

/** `count` chats of `pairs` user/assistant pairs each; chat i was last active at `firstAt` + i × `stepMs`. */
export interface ChatGroup {
  ownerId: string;
  count: number;
  pairs: number;
  firstAt: Date;
  stepMs: number;
}

/** An API key row as the service stores it: only the SHA-256 of the key, and its first 12 characters. */
export interface SeedKey {
  key: string;
  id: string;
  name: string;
  prefix: string;
  hash: string;
}

/** Seeds one database; engines differ only in how fast they take a million rows. */
export interface Seeder {
  insertKey(key: SeedKey): Promise<void>;
  /** @returns the ids of the new chats, in the group's order. */
  insertChats(group: ChatGroup): Promise<string[]>;
  /** Messages still stored for a chat (deleted chats' included, until their purge). */
  countMessages(ownerId: string, chatId: string): Promise<number>;
  countAllMessages(): Promise<number>;
  /**
   * Leaves the database as it would be at rest after the load, so that the service does not pay
   * for the seeding: SQLite checkpoints its WAL into the file; PostgreSQL runs what autovacuum
   * would soon run (VACUUM ANALYZE).
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** A new key, as `npm run keys -- create` makes one. */
export function newSeedKey(): SeedKey {
  const key = `lss_${randomBytes(32).toString('base64url')}`;
  return { key, id: randomUUID(), name: 'bench-scale', prefix: key.slice(0, 12), hash: createHash('sha256').update(key).digest('hex') };
}

/** Assistant replies record the instance and model that generated them. */
export const SEED_INSTANCE = 'bench-seed:1';
export const SEED_MODEL = 'gpt-4o-2024-11-20';
/** The system prompt every seeded reply was generated with: the default one. */
export const SEED_PROMPT_HASH = createHash('sha256').update('You are a helpful assistant.').digest('hex');

/** Token counts as the service stores them, for the texts below (o200k_base). */
export const USER_TOKENS = 18;
export const ASSISTANT_TOKENS = 24;
export const PROMPT_TOKENS = 120;

/** Message texts of pair `k`, in JavaScript (SQLite seeding) and as SQL over a column `k` (PostgreSQL seeding). */
export const userText = (k: number) => `Question ${k} of this chat: how would you word a short note about tomorrow's weather?`;
export const assistantText = (k: number) => `Here is note ${k}: a bright morning, clouds by noon and light rain in the evening; take a coat.`;
export const USER_TEXT_SQL = `'Question ' || k || ' of this chat: how would you word a short note about tomorrow''s weather?'`;
export const ASSISTANT_TEXT_SQL = `'Here is note ' || k || ': a bright morning, clouds by noon and light rain in the evening; take a coat.'`;
