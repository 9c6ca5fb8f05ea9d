import { ConfigError } from '../config/config-error';
import type { OpenedStore } from './open-store';

export interface OpenPostgresqlStoreOptions {
  databaseUrl: string;
  migrationsDir: string;
  owner: boolean;
  migrate?: boolean;
  poolSize: number;
  statementTimeoutMs: number;
}

/** Placeholder until the PostgreSQL store exists. */
export async function openPostgresqlStore(_options: OpenPostgresqlStoreOptions): Promise<OpenedStore> {
  throw new ConfigError('PostgreSQL is not supported by this version yet.');
}
