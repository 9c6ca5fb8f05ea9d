import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import { Client, Pool } from 'pg';
import { ConfigError } from '../config/config-error';
import { DeletedChatPurge } from './deleted-chat-purge';
import { postgresqlPurgeSteps } from './postgresql-purge-steps';
import { ensurePostgresqlDatabase } from './ensure-postgresql-database';
import { migratePostgresql, pendingPostgresqlMigrations } from './migrate-postgresql';
import type { OpenedStore } from './open-store';
import { PostgresqlChatStore } from './postgresql-chat-store';
import { PostgresqlKeyCache } from './postgresql-key-cache';
import { PostgresqlKeyStore } from './postgresql-key-store';
import { PostgresqlSql } from './postgresql-sql';

export interface OpenPostgresqlStoreOptions {
  /** A libpq-style URL, passed to `pg` as it is: its parameters (sslmode, sslrootcert, application_name, options…) apply. */
  databaseUrl: string;
  migrationsDir: string;
  /** A serving process: it keeps the keys it has read (PostgresqlKeyCache). Instances share the server; leases tell their replies apart. */
  owner: boolean;
  /** How often the key cache checks that notices of key changes still arrive (default 5 s). */
  keyCacheProbeMs?: number;
  /** Told when the key cache starts or stops serving. */
  onKeyCacheState?: (serving: boolean, reason: string) => void;
  /** Apply pending migrations (default); false: refuse a database that has any. */
  migrate?: boolean;
  poolSize: number;
  /** Longest a statement may run; 0 = no limit. */
  statementTimeoutMs: number;
}

/**
 * How often the key cache proves that it still hears key changes; a silent loss of notices (a
 * connection cut without a reset) keeps a revoked key usable at most about twice this long.
 */
const KEY_CACHE_PROBE_MS = 5_000;

/** How long getting a connection may take, so that an unreachable host fails a call rather than hanging it. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens the PostgreSQL store: checks that the server answers, applies pending migrations (unless
 * `migrate` is false), then builds the Prisma client on a `pg` pool of `poolSize` connections.
 * @returns the stores, the migrations applied now, and the database as `host:port/name` (never a password).
 * @throws ConfigError when the server cannot be reached (naming where and why), or when `migrate`
 *   is false and migrations are pending; the migrator's Error when a migration fails.
 */
export async function openPostgresqlStore(options: OpenPostgresqlStoreOptions): Promise<OpenedStore> {
  const { databaseUrl: connectionString, migrationsDir } = options;
  const database = describePostgresqlUrl(connectionString);
  const created = await checkReachable(connectionString, database, options.migrate !== false);
  const appliedMigrations =
    options.migrate === false
      ? await refusePending(connectionString, migrationsDir)
      : await migratePostgresql({ connectionString, migrationsDir });
  const pool = new Pool({
    connectionString: withSessionSettings(connectionString),
    max: options.poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(options.statementTimeoutMs > 0 ? { statement_timeout: options.statementTimeoutMs } : {}),
  });
  const sql = new PostgresqlSql(await new PrismaPg(pool, { disposeExternalPool: true, statementNameGenerator: statementName }).connect());
  // A tool's connection is short-lived and checks no keys: only a serving process keeps them.
  const keyCache = options.owner
    ? new PostgresqlKeyCache({
        connectionString,
        notify: async (channel, payload) => {
          await sql.execute('SELECT pg_notify($1, $2)', channel, payload);
        },
        probeIntervalMs: options.keyCacheProbeMs ?? KEY_CACHE_PROBE_MS,
        onState: options.onKeyCacheState,
      })
    : undefined;
  keyCache?.start();
  return {
    store: new PostgresqlChatStore({ sql, purge: new DeletedChatPurge(postgresqlPurgeSteps(sql)), keyCache }),
    keys: new PostgresqlKeyStore(sql, keyCache),
    appliedMigrations,
    describe: { engine: 'postgresql', database, ...(created ? { created } : {}) },
  };
}

const statementNames = new Map<string, string>();

/**
 * A name per statement text, so that each connection prepares a statement once and then only
 * binds and executes it: the store's statements are a fixed set of texts.
 */
function statementName(query: { sql: string }): string {
  let name = statementNames.get(query.sql);
  if (name === undefined) {
    name = `lss_${createHash('sha1').update(query.sql).digest('hex').slice(0, 20)}`;
    statementNames.set(query.sql, name);
  }
  return name;
}

/**
 * The URL with the session settings the store needs, around whatever `options` it already has:
 * - `synchronous_commit = off` first, so that the URL can turn it back on: a commit returns
 *   without waiting for its WAL flush (about a millisecond a write here), the trade SQLite makes
 *   with `synchronous = NORMAL`: a crash of the database server or a power cut can lose the last
 *   few hundred milliseconds of commits, never corrupt the database. A crash of this service
 *   loses nothing more than before.
 * - `TimeZone = UTC` last, so that nothing overrides it: the driver adapter sends a Date as
 *   zoneless text and reads timestamptz back with its offset dropped, which is right only in a UTC
 *   session (in a role or server whose zone was Pacific/Auckland, times were stored 13 hours off).
 * Set in the start-up packet, they cost no round trip.
 */
function withSessionSettings(connectionString: string): string {
  const url = new URL(connectionString);
  const options = ['-c synchronous_commit=off', url.searchParams.get('options'), '-c TimeZone=UTC'];
  url.searchParams.set('options', options.filter(Boolean).join(' '));
  return url.href;
}

/** `postgres://user:secret@db.internal:6432/chat?sslmode=require` → `db.internal:6432/chat`. */
export function describePostgresqlUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  const host = url.hostname || url.searchParams.get('host') || 'localhost';
  const port = url.port || url.searchParams.get('port') || '5432';
  return `${host}:${port}/${decodeURIComponent(url.pathname.replace(/^\//, ''))}`;
}

/** Checks that the server answers; a database that does not exist yet is created when migrating. @returns true when created. */
async function checkReachable(connectionString: string, database: string, create: boolean): Promise<boolean> {
  try {
    if (create) return await ensurePostgresqlDatabase(connectionString, CONNECT_TIMEOUT_MS);
    const client = new Client({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    try {
      await client.connect();
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    throw new ConfigError(`Cannot connect to PostgreSQL at ${database}: ${connectionFailure(error)}`);
  }
}

/**
 * pg's reason. Connecting to `localhost` tries each address and may fail with an AggregateError
 * without a message; socket errors come from Node's own realm, so no `instanceof` here.
 */
function connectionFailure(error: unknown): string {
  const { message, code, errors } = (typeof error === 'object' && error !== null ? error : {}) as {
    message?: unknown;
    code?: unknown;
    errors?: Array<{ message?: unknown }>;
  };
  if (typeof message === 'string' && message) return message;
  const inner = (errors ?? []).map((each) => each.message).filter((each): each is string => typeof each === 'string' && each !== '');
  if (inner.length > 0) return inner.join('; ');
  return typeof code === 'string' ? code : String(error);
}

/** For a server that does not migrate: nothing applied, or a ConfigError naming what is pending. */
async function refusePending(connectionString: string, migrationsDir: string): Promise<[]> {
  const pending = await pendingPostgresqlMigrations({ connectionString, migrationsDir });
  if (pending.length > 0) {
    throw new ConfigError(
      `The database has migrations not applied (${pending.join(', ')}) and [database] migrate_on_start is false: ` +
        'run `npm run migrate` first, or set migrate_on_start = true.',
    );
  }
  return [];
}
