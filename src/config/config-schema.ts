import { z } from 'zod';

const seconds = z.number().positive();

/** The shape of the TOML settings after the overlays; unknown keys are rejected to catch typos. */
export const configSchema = z.strictObject({
  server: z.strictObject({
    // Environment values arrive as text: only plain decimal digits count as a port.
    port: z.preprocess(
      (value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value),
      z.number({ error: (issue) => (issue.code === 'invalid_type' ? 'expected a port number' : undefined) })
        .int('expected a port number').min(0).max(65535),
    ),
    /** Unset: 0.0.0.0 with auth on, 127.0.0.1 with auth off. */
    host: z.string().min(1).optional(),
    body_limit: z.union([
      z.number().int().positive(),
      z.string().regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)$/i, 'expected a size such as "1mb" or "512kb"'),
    ]),
    /** Worker processes sharing the port: a number, or "auto" (one per core). Above 1 needs PostgreSQL and Redis. */
    workers: z.preprocess(
      (value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value),
      z.union([z.literal('auto'), z.number().int().min(1).max(256)], { error: 'expected a number of workers (1 or more) or "auto"' }),
    ),
    cors_origins: z.array(
      z.union([z.literal('*'), z.string().regex(/^https?:\/\/[^/\s]+$/, 'expected "*" or an origin such as "https://app.example.com"')]),
    ),
  }),
  auth: z.strictObject({
    enabled: z.boolean(),
    /** How long a token from POST /api/chat/:chatId/stream-token opens that chat's stream. */
    stream_token_ttl_seconds: z.preprocess(
      (value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value),
      z.number({ error: 'expected a whole number of seconds' }).int('expected a whole number of seconds').min(1).max(86_400),
    ),
    /** End users' JWTs (OIDC access tokens): all three set, or none (checked in load-config). */
    jwt_jwks_url: z.union([z.literal(''), z.string().regex(/^https?:\/\/[^\s]+$/, 'expected a URL such as "https://login.example.com/.well-known/jwks.json"')]),
    jwt_issuer: z.string(),
    jwt_audience: z.string(),
  }),
  limits: z.strictObject({
    requests_per_minute: z.number().int().min(1),
    concurrent_streams: z.number().int().min(1),
    max_messages_per_request: z.number().int().min(1),
    max_message_characters: z.number().int().min(1),
    /** Open SSE connections per key (POST streams and resumes); 0 = 4 × concurrent_streams. */
    max_open_streams: z.number().int().min(0),
  }),
  database: z.strictObject({
    url: z
      .string()
      .regex(
        /^(file:|postgres:\/\/|postgresql:\/\/)/,
        'expected a SQLite URL such as "file:./data/chat.db" or a PostgreSQL URL such as "postgres://user@host:5432/chat"',
      ),
    /** Apply pending migrations at start; off: a start on a database with pending migrations is refused. */
    migrate_on_start: z.boolean(),
    /** PostgreSQL: connections per server process. */
    pool_size: z.number().int().min(1),
    /** PostgreSQL: longest a statement may run, in milliseconds; 0 = no limit. */
    statement_timeout_ms: z.number().int().min(0),
    /** How long a request waits, without blocking, for a database another process holds locked. */
    lock_wait_seconds: seconds,
    /** How long the final save of a finished reply is retried before only its last checkpoint is kept. */
    reply_save_retry_seconds: seconds,
  }),
  cluster: z.strictObject({
    /** This instance's name, stable across its restarts; "" = host name and port. */
    instance_id: z.string().max(200),
    /** How long an instance's running replies stay its own after its last lease renewal. */
    lease_seconds: z.number().min(2),
    /** Redis, shared by the instances of a deployment; "" = one instance, nothing shared. */
    redis_url: z.union([z.literal(''), z.string().regex(/^rediss?:\/\//, 'expected a Redis URL such as "redis://localhost:6379"')]),
    /** Every Redis key and channel starts with it. */
    redis_prefix: z.string().min(1).max(100),
  }),
  chat: z.strictObject({
    max_conversation_pairs: z.number().int().min(0),
    max_context_tokens: z.number().int().min(0),
    reserve_output_tokens: z.number().int().min(1),
    tokenizer: z.enum(['auto', 'o200k_base', 'cl100k_base']),
    default_system_prompt: z.string(),
    generate_titles: z.boolean(),
  }),
  openai: z.strictObject({
    model: z.string().min(1),
    temperature: z.number().min(0).max(2),
    max_tokens: z.number().int().min(0),
    reasoning_model: z.union([z.literal('auto'), z.boolean()], { error: 'expected "auto", true or false' }),
    max_retries: z.number().int().min(0).max(10),
    request_timeout_seconds: seconds,
    api_version: z.string().min(1),
    /** Longest upstream SSE line or event accepted. */
    max_event_bytes: z.number().int().min(1024),
  }),
  streaming: z.strictObject({
    resume_grace_seconds: z.number().min(0),
    shutdown_grace_seconds: z.number().min(0),
    heartbeat_seconds: seconds,
    upstream_idle_timeout_seconds: seconds,
    checkpoint_interval_seconds: seconds,
    /** After a reply ends, a reader that has not taken the rest of it within this long is disconnected. */
    slow_reader_timeout_seconds: seconds,
  }),
  simulator: z.strictObject({
    delay_ms: z.number().int().min(0).max(10_000),
  }),
  metrics: z.strictObject({
    /** GET /metrics (Prometheus). */
    enabled: z.preprocess(
      (value) => (value === 'true' ? true : value === 'false' ? false : value),
      z.boolean({ error: 'expected true or false' }),
    ),
    /** Set: /metrics needs `Authorization: Bearer <token>`; empty: only loopback and private networks may scrape. */
    token: z.string(),
  }),
  logging: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    log_content: z.boolean(),
  }),
});

export type Config = z.infer<typeof configSchema>;
