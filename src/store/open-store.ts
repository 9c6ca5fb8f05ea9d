import type { KeyStore } from '../auth/api-keys';
import type { ChatStore } from '../chat/ports';
import { databaseEngine, migrationsDir, type DatabaseEngine } from './migrate-database';
import { openSqliteStore } from './open-sqlite-store';

export interface OpenedStore {
  store: ChatStore;
  keys: KeyStore;
  appliedMigrations: string[];
  /** What the logs say of the database: its engine and where it is, never a password. */
  describe: { engine: DatabaseEngine; database: string; created?: boolean };
}

export interface OpenStoreSettings {
  databaseUrl: string;
  /** The project's `prisma/` folder, which holds each engine's migrations. */
  prismaDir: string;
  /** SQLite: how long a call waits, on timers, for a lock another process holds. */
  lockWaitMs: number;
  /** A serving process (not a tool such as the keys CLI). SQLite: it takes the owner lock; PostgreSQL: it keeps the keys it reads. */
  owner: boolean;
  /** PostgreSQL: how often the key cache checks that it still hears key changes (default 5 s). */
  keyCacheProbeMs?: number;
  /** PostgreSQL: told when the key cache starts or stops serving. */
  onKeyCacheState?: (serving: boolean, reason: string) => void;
  /** Apply pending migrations (default); false: refuse a database that has any. */
  migrate?: boolean;
  /** PostgreSQL: connections in the pool. */
  poolSize: number;
  /** PostgreSQL: longest a statement may run, in milliseconds; 0 = no limit. */
  statementTimeoutMs: number;
}

/** Opens the store of the engine `databaseUrl` names (`file:` SQLite, `postgres(ql)://` PostgreSQL), migrated first. */
export async function openStore(settings: OpenStoreSettings): Promise<OpenedStore> {
  const engine = databaseEngine(settings.databaseUrl);
  const dir = migrationsDir(settings.prismaDir, engine);
  if (engine === 'postgresql') {
    // Loaded for PostgreSQL only: `pg` and Prisma's adapter are several MiB a SQLite service does not need.
    const { openPostgresqlStore } = require('./open-postgresql-store') as typeof import('./open-postgresql-store');
    return openPostgresqlStore({ ...settings, migrationsDir: dir });
  }
  const opened = await openSqliteStore({ ...settings, migrationsDir: dir });
  return { ...opened, describe: { engine, database: opened.databasePath } };
}
