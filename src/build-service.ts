import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { ChatService } from './chat/chat-service';
import type { ChatStore, LlmProvider } from './chat/ports';
import type { Config } from './config/config-schema';
import type { ProviderSettings } from './config/resolve-provider';
import { createApp } from './http/create-app';
import { ApiKeys } from './auth/api-keys';
import { createJwtVerifier } from './auth/jwt-verifier';
import { StreamTokens } from './auth/stream-tokens';
import { Conversations } from './chat/conversations';
import { ConfigError } from './config/config-error';
import { jwtSettings, replyTokenLimit, workerCount } from './config/load-config';
import { createProvider } from './llm/create-provider';
import { createTokenCounter, inferContextWindow, inferEncoding } from './llm/token-counter';
import { InstanceLease, instanceIdentity } from './chat/instance-lease';
import { openStore } from './store/open-store';
import type { RedisCluster } from './cluster/redis-cluster';
import { ServiceMetrics } from './metrics/service-metrics';
import { workerMetrics } from './metrics/worker-metrics';

export interface Service {
  app: Express;
  chat: ChatService;
  store: ChatStore;
  provider: LlmProvider;
  /** Undefined when auth is off. */
  keys: ApiKeys | undefined;
  appliedMigrations: string[];
  /** This instance's name and lease; stop the lease before closing the store. */
  instanceId: string;
  lease: InstanceLease;
  /** Multi-instance mode (Redis); close it after the chat service's shutdown, before the lease. */
  cluster: RedisCluster | undefined;
}

/** The project's root folder, where `config/` and `prisma/migrations/` live (from src/ or dist/). */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

/**
 * Wires the real dependencies: the store of the configured engine (migrated), this instance's
 * lease, the model provider, the chat service and the HTTP app. Used by `main.ts` and by tests, so
 * both run the same wiring.
 */
export async function buildService(options: {
  config: Config;
  providerSettings: ProviderSettings;
  logger: Logger;
  /** This process's number among `[server] workers` (1, 2…); undefined: the only process. */
  worker?: number;
}): Promise<Service> {
  const { config, providerSettings, logger, worker } = options;
  const { store, keys: keyStore, appliedMigrations, describe } = await openStore({
    databaseUrl: config.database.url,
    prismaDir: path.join(PROJECT_ROOT, 'prisma'),
    lockWaitMs: config.database.lock_wait_seconds * 1000,
    owner: true,
    migrate: config.database.migrate_on_start,
    poolSize: config.database.pool_size,
    statementTimeoutMs: config.database.statement_timeout_ms,
    onKeyCacheState: (serving, reason) =>
      serving
        ? logger.info({ reason }, 'API keys are cached: checks need no query')
        : logger.warn({ reason }, 'API keys are no longer cached: each check queries the database'),
  });
  const instanceId = instanceIdentity(config.cluster.instance_id, config.server.port, worker);
  // Where the data lives, named once: the engine and the file or host:port/database, never a password.
  logger.info({ ...describe, instanceId, appliedMigrations }, 'database ready');
  // Multi-instance mode only: a single instance never loads ioredis (several MiB of memory).
  const redisMode = config.cluster.redis_url ? loadRedisMode() : undefined;
  const cluster = redisMode
    ? new redisMode.RedisCluster({
        url: config.cluster.redis_url!,
        prefix: config.cluster.redis_prefix,
        instanceId,
        leaseMs: config.cluster.lease_seconds * 1000,
        // A cancelled reply is stored within its save retries; then the answer has to travel back.
        cancelWaitMs: (config.database.reply_save_retry_seconds + 5) * 1000,
        log: logger.child({ module: 'cluster' }),
      })
    : undefined;
  const lease = new InstanceLease({ store, instanceId, leaseMs: config.cluster.lease_seconds * 1000, log: logger });
  try {
    if (cluster) await refuseNameInUse(cluster, instanceId, logger);
    // Before any reply of this run exists: what is still `streaming` from this instance's last
    // run (or from instances whose lease lapsed) was cut off.
    const abandonedReplies = await lease.start();
    if (abandonedReplies > 0) logger.warn({ abandonedReplies }, 'replies cut off by the last stop marked interrupted');
  } catch (error) {
    await cluster?.close();
    await store.close();
    throw error;
  }
  // Chats deleted just before a stop may still have messages to remove.
  void store.purgeDeletedChats().catch((error: unknown) => logger.warn({ err: error }, 'could not finish removing deleted chats; retried at the next start'));
  // The metrics and the provider and chat service they observe each need the other.
  let metrics: ServiceMetrics | undefined;
  let chatService: ChatService | undefined;
  const provider = createProvider(providerSettings, config, config.metrics.enabled ? () => metrics?.upstreamRetried() : undefined);
  if (config.metrics.enabled) metrics = new ServiceMetrics({ activeGenerations: () => chatService?.generationCount ?? 0, model: provider.model });
  const window = contextWindow(config, provider.model);
  const chat = new ChatService({
    store,
    instanceId,
    provider,
    counter: createTokenCounter(config.chat.tokenizer === 'auto' ? inferEncoding(provider.model) : config.chat.tokenizer),
    maxConversationPairs: config.chat.max_conversation_pairs,
    maxPromptTokens: window - config.chat.reserve_output_tokens,
    maxReplyTokens: replyTokenLimit(config),
    generateTitles: config.chat.generate_titles,
    maxTurnsPerOwner: config.auth.enabled ? config.limits.concurrent_streams : undefined,
    defaultSystemPrompt: config.chat.default_system_prompt,
    logContent: config.logging.log_content,
    idleTimeoutMs: config.streaming.upstream_idle_timeout_seconds * 1000,
    resumeGraceMs: config.streaming.resume_grace_seconds * 1000,
    checkpointIntervalMs: config.streaming.checkpoint_interval_seconds * 1000,
    replySaveRetryMs: config.database.reply_save_retry_seconds * 1000,
    cluster,
    metrics,
  });
  chatService = chat;
  cluster?.serve(chat);
  const conversations = new Conversations(store, chat);
  const keys = config.auth.enabled ? new ApiKeys(keyStore) : undefined;
  const rateLimitStore = cluster && redisMode?.redisRateLimitStore(cluster.connection, config.cluster.redis_prefix);
  const jwt = config.auth.enabled ? jwtSettings(config) : undefined;
  const jwtVerifier = jwt && createJwtVerifier(jwt);
  if (jwt) logger.info({ issuer: jwt.issuer, audience: jwt.audience, jwksUrl: jwt.jwksUrl }, 'end users\' JWTs are accepted beside API keys');
  const sharedTokenSecret =
    cluster && redisMode && ((known?: Buffer) => redisMode.sharedSecret(cluster.connection, `${config.cluster.redis_prefix}stream-token-secret`, known));
  const streamTokens = new StreamTokens({ secret: streamTokenSecret(sharedTokenSecret), ttlSeconds: config.auth.stream_token_ttl_seconds });
  const app = createApp({
    config,
    logger,
    keys,
    jwtVerifier,
    streamTokens,
    chat,
    conversations,
    store,
    provider,
    cluster,
    rateLimitStore,
    webDirectory: path.join(PROJECT_ROOT, 'dist', 'web'),
    metrics: metrics && { service: metrics, exposition: exposition(metrics, worker !== undefined && workerCount(config) > 1) },
  });
  return { app, chat, store, provider, keys, appliedMigrations, instanceId, lease, cluster };
}

/** What GET /metrics serves: this process's metrics, or with several workers, all of theirs summed. */
function exposition(metrics: ServiceMetrics, acrossWorkers: boolean) {
  if (acrossWorkers) return workerMetrics(metrics.registry);
  return async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() });
}

/**
 * A second process started under a running instance's name would mark that instance's live
 * replies interrupted at its start, as if they were its own last run's. Redis knows whether a
 * process listens under the name (its subscription goes with its connection, so a crashed one
 * does not count); when Redis cannot be reached in time, the start goes on and says so.
 * @throws ConfigError when a running instance uses the name.
 */
async function refuseNameInUse(cluster: RedisCluster, instanceId: string, logger: Logger): Promise<void> {
  const inUse = await cluster.nameInUse(2000);
  if (inUse === undefined) {
    logger.warn({ instanceId }, 'could not check that no running instance has this name: Redis is not reachable');
  } else if (inUse) {
    throw new ConfigError(
      `A running instance already has the name "${instanceId}" ([cluster] instance_id, INSTANCE_ID, or the host name and port): give each instance its own.`,
    );
  }
}

/**
 * The key that signs stream tokens. Every instance and worker of a deployment must accept the
 * tokens of the others, so with Redis it is one secret kept there (made by the first instance to
 * ask; asked for on first use, since Redis may still be connecting at start). Alone, a key of this
 * process's own is enough: its tokens end with it, at the latest after their short lifetime.
 */
function streamTokenSecret(shared: ((known?: Buffer) => Promise<Buffer>) | undefined): (known?: Buffer) => Promise<Buffer> {
  if (shared) return shared;
  const secret = randomBytes(32);
  return async () => secret;
}

/** The modules of multi-instance mode, loaded only when Redis is configured. */
function loadRedisMode() {
  const { RedisCluster } = require('./cluster/redis-cluster') as typeof import('./cluster/redis-cluster');
  const { redisRateLimitStore } = require('./cluster/redis-rate-limit-store') as typeof import('./cluster/redis-rate-limit-store');
  const { sharedSecret } = require('./cluster/shared-secret') as typeof import('./cluster/shared-secret');
  return { RedisCluster, redisRateLimitStore, sharedSecret };
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
