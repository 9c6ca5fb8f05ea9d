import path from 'node:path';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { ChatService } from './chat/chat-service';
import type { ChatStore, LlmProvider } from './chat/ports';
import type { Config } from './config/config-schema';
import type { ProviderSettings } from './config/resolve-provider';
import { createApp } from './http/create-app';
import { ApiKeys } from './auth/api-keys';
import { Conversations } from './chat/conversations';
import { ConfigError } from './config/config-error';
import { createProvider } from './llm/create-provider';
import { createTokenCounter, inferContextWindow, inferEncoding } from './llm/token-counter';
import { databaseEngine } from './store/migrate-database';
import { openSqliteStore } from './store/open-sqlite-store';

export interface Service {
  app: Express;
  chat: ChatService;
  store: ChatStore;
  provider: LlmProvider;
  /** Undefined when auth is off. */
  keys: ApiKeys | undefined;
  appliedMigrations: string[];
}

/** The project's root folder, where `config/` and `prisma/migrations/` live (from src/ or dist/). */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

/**
 * Wires the real dependencies: the SQLite store (migrated), the model provider, the chat service
 * and the HTTP app. Used by `main.ts` and by tests, so both run the same wiring.
 */
export async function buildService(options: { config: Config; providerSettings: ProviderSettings; logger: Logger }): Promise<Service> {
  const { config, providerSettings, logger } = options;
  refuseUnservedDatabase(config);
  const { store, keys: keyStore, appliedMigrations } = await openSqliteStore({
    databaseUrl: config.database.url,
    migrationsDir: path.join(PROJECT_ROOT, 'prisma', 'migrations'),
    lockWaitMs: config.database.lock_wait_seconds * 1000,
    owner: true,
    migrate: config.database.migrate_on_start,
  });
  // This process owns the file now (or openSqliteStore threw): a reply still `streaming` was cut
  // off when the last owner stopped.
  const abandonedReplies = await store.interruptAbandonedReplies();
  if (abandonedReplies > 0) logger.warn({ abandonedReplies }, 'replies cut off by the last stop marked interrupted');
  const provider = createProvider(providerSettings, config);
  const window = contextWindow(config, provider.model);
  const chat = new ChatService({
    store,
    provider,
    counter: createTokenCounter(config.chat.tokenizer === 'auto' ? inferEncoding(provider.model) : config.chat.tokenizer),
    maxConversationPairs: config.chat.max_conversation_pairs,
    maxPromptTokens: window - config.chat.reserve_output_tokens,
    maxReplyTokens: config.openai.max_tokens || config.chat.reserve_output_tokens,
    generateTitles: config.chat.generate_titles,
    maxTurnsPerOwner: config.auth.enabled ? config.limits.concurrent_streams : undefined,
    defaultSystemPrompt: config.chat.default_system_prompt,
    logContent: config.logging.log_content,
    idleTimeoutMs: config.streaming.upstream_idle_timeout_seconds * 1000,
    resumeGraceMs: config.streaming.resume_grace_seconds * 1000,
    checkpointIntervalMs: config.streaming.checkpoint_interval_seconds * 1000,
    replySaveRetryMs: config.database.reply_save_retry_seconds * 1000,
  });
  const conversations = new Conversations(store, chat);
  const keys = config.auth.enabled ? new ApiKeys(keyStore) : undefined;
  const app = createApp({ config, logger, keys, chat, conversations, store, provider });
  return { app, chat, store, provider, keys, appliedMigrations };
}

/**
 * Refuses a database the server cannot serve yet: PostgreSQL has migrations and a migrate command,
 * but no chat store. Called before anything else is done with the settings.
 * @throws ConfigError when `[database] url` names a PostgreSQL database.
 */
export function refuseUnservedDatabase(config: Config): void {
  if (databaseEngine(config.database.url) === 'postgresql') {
    throw new ConfigError(
      'PostgreSQL is not supported by this version yet: [database] url names a PostgreSQL database, and the server stores chats ' +
        'in SQLite only (a file: URL). `npm run migrate` can already prepare a PostgreSQL database.',
    );
  }
}

/** The model's context window, which must leave room for the prompt after the reserved reply. */
function contextWindow(config: Config, model: string): number {
  const window = config.chat.max_context_tokens || inferContextWindow(model);
  if (config.chat.reserve_output_tokens >= window) {
    throw new ConfigError(
      `Invalid configuration:\n  - chat.reserve_output_tokens: must be smaller than the context window (${window} tokens for ${model})`,
    );
  }
  return window;
}
