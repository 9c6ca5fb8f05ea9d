import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import TOML from '@iarna/toml';
import type { z } from 'zod';
import { ConfigError } from './config-error';
import { configSchema, type Config } from './config-schema';

export type Environment = Record<string, string | undefined>;

/** Where each environment variable lands in the settings; the environment wins over files. */
const ENVIRONMENT_OVERRIDES: ReadonlyArray<[variable: string, key: string]> = [
  ['PORT', 'server.port'],
  ['HOST', 'server.host'],
  ['DATABASE_URL', 'database.url'],
  ['INSTANCE_ID', 'cluster.instance_id'],
  ['REDIS_URL', 'cluster.redis_url'],
  ['WORKERS', 'server.workers'],
  ['LOG_LEVEL', 'logging.level'],
  ['OPENAI_MODEL', 'openai.model'],
  ['AZURE_OPENAI_DEPLOYMENT_NAME', 'openai.model'],
  ['AZURE_OPENAI_API_VERSION', 'openai.api_version'],
  ['STREAM_TOKEN_TTL_SECONDS', 'auth.stream_token_ttl_seconds'],
  ['JWT_JWKS_URL', 'auth.jwt_jwks_url'],
  ['JWT_ISSUER', 'auth.jwt_issuer'],
  ['JWT_AUDIENCE', 'auth.jwt_audience'],
  ['METRICS_ENABLED', 'metrics.enabled'],
  ['METRICS_TOKEN', 'metrics.token'],
];

type Tree = Record<string, unknown>;

/**
 * Reads `defaultsPath`, overlays the TOML file at `CONFIG_PATH` (if set), then the environment,
 * and validates the result.
 * @throws ConfigError naming the file or key at fault.
 */
export function loadConfig(defaultsPath: string, environment: Environment): Config {
  let tree = readToml(defaultsPath);
  const overlayPath = environment.CONFIG_PATH?.trim();
  if (overlayPath) tree = mergeTrees(tree, readToml(path.resolve(overlayPath)));
  for (const [variable, key] of ENVIRONMENT_OVERRIDES) {
    const value = environment[variable]?.trim();
    if (value) setKey(tree, key, value);
  }
  const parsed = configSchema.safeParse(tree);
  if (!parsed.success) throw new ConfigError(`Invalid configuration:\n${describeIssues(parsed.error)}`);
  checkSharedSettings(parsed.data);
  checkJwtSettings(parsed.data);
  return parsed.data;
}

/**
 * The JWT settings work together: with only some of them set, tokens would be checked against
 * nothing (no audience, any issuer) or could not be checked at all. And with auth off, a JWT
 * setting would suggest a protection that is not there.
 */
function checkJwtSettings(config: Config): void {
  const settings = [
    ['auth.jwt_jwks_url (JWT_JWKS_URL)', config.auth.jwt_jwks_url],
    ['auth.jwt_issuer (JWT_ISSUER)', config.auth.jwt_issuer],
    ['auth.jwt_audience (JWT_AUDIENCE)', config.auth.jwt_audience],
  ] as const;
  const set = settings.filter(([, value]) => value.trim() !== '');
  if (set.length === 0) return;
  if (set.length < settings.length) {
    const missing = settings.filter(([, value]) => value.trim() === '').map(([name]) => name);
    throw new ConfigError(`Invalid configuration:\n  - JWT end users need all three of auth.jwt_jwks_url, auth.jwt_issuer and auth.jwt_audience; not set: ${missing.join(', ')}`);
  }
  if (!config.auth.enabled) {
    throw new ConfigError('Invalid configuration:\n  - auth.jwt_jwks_url, auth.jwt_issuer and auth.jwt_audience are set but auth.enabled is false: with auth off no token is checked');
  }
}

/** The JWT settings when all three are set (end users' tokens accepted), else undefined. */
export function jwtSettings(config: Config): { jwksUrl: string; issuer: string; audience: string } | undefined {
  const { jwt_jwks_url: jwksUrl, jwt_issuer: issuer, jwt_audience: audience } = config.auth;
  return jwksUrl && issuer.trim() && audience.trim() ? { jwksUrl, issuer, audience } : undefined;
}

/** The most tokens a reply may have: `[openai] max_tokens`, or else the room kept for it. */
export function replyTokenLimit(config: Config): number {
  return config.openai.max_tokens || config.chat.reserve_output_tokens;
}

/** The shape limits of a request's messages (`[limits]`). */
export function messageLimits(config: Config): { maxMessages: number; maxCharacters: number } {
  return { maxMessages: config.limits.max_messages_per_request, maxCharacters: config.limits.max_message_characters };
}

/** How many worker processes `[server] workers` asks for on this machine. */
export function workerCount(config: Config): number {
  return config.server.workers === 'auto' ? availableParallelism() : config.server.workers;
}

/**
 * Several instances (Redis) or several workers share their replies through PostgreSQL and Redis:
 * a SQLite file belongs to one process, and workers without Redis could not see each other's.
 */
function checkSharedSettings(config: Config): void {
  const problems: string[] = [];
  const onPostgresql = !config.database.url.startsWith('file:');
  if (config.cluster.redis_url && !onPostgresql) {
    problems.push(
      'cluster.redis_url (REDIS_URL): multi-instance mode needs a PostgreSQL database (DATABASE_URL=postgres://...); a SQLite file is one process\'s',
    );
  }
  const workers = workerCount(config);
  if (workers > 1 && (!onPostgresql || !config.cluster.redis_url)) {
    problems.push(
      `server.workers (WORKERS): ${workers} workers${config.server.workers === 'auto' ? ' ("auto": one per core)' : ''} need a PostgreSQL DATABASE_URL and REDIS_URL, which the workers share`,
    );
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
}

function readToml(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${file}: ${(error as Error).message}`);
  }
  try {
    return TOML.parse(text) as Tree;
  } catch (error) {
    throw new ConfigError(`Config file ${file} is not valid TOML: ${(error as Error).message}`);
  }
}

function mergeTrees(base: Tree, overlay: Tree): Tree {
  const merged: Tree = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const current = merged[key];
    merged[key] = isTree(current) && isTree(value) ? mergeTrees(current, value) : value;
  }
  return merged;
}

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function setKey(tree: Tree, dottedKey: string, value: string): void {
  const [section, key] = dottedKey.split('.') as [string, string];
  const current = tree[section];
  tree[section] = { ...(isTree(current) ? current : {}), [key]: value };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.join('.') || '(root)';
      return `  - ${key}: ${issue.message}`;
    })
    .join('\n');
}
