import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { readCpuMs } from './proc-stats';

/**
 * The PostgreSQL server a run measures on (BENCH_DATABASE_URL). The server may be shared: a run
 * creates its own databases, with unique names, drops them when done (on failure and Ctrl-C too),
 * and only reads the server's settings, never changes them.
 */

/** Databases this process created and has not dropped yet: name → server URL. */
const created = new Map<string, string>();

export interface PostgresqlSettings {
  version: string;
  synchronousCommit: string;
  fsync: string;
}

async function withClient<T>(url: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `url` with its database replaced by `name`. */
export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The database name of a postgres:// URL. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** Creates an empty database named after `label` and this process; returns its URL. */
export async function createBenchDatabase(serverUrl: string, label: string): Promise<string> {
  const name = `bench_${label}_${process.pid}_${randomBytes(3).toString('hex')}`;
  await withClient(serverUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  created.set(name, serverUrl);
  return databaseUrl(serverUrl, name);
}

/** Drops a database `createBenchDatabase` made, closing any session still on it. */
export async function dropBenchDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const serverUrl = created.get(name);
  if (serverUrl === undefined) return;
  await withClient(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  created.delete(name);
}

/** Drops every database still left, in parallel. */
export async function dropAllBenchDatabases(): Promise<void> {
  await Promise.all([...created.keys()].map((name) => dropBenchDatabase(databaseUrl(created.get(name)!, name)).catch(() => undefined)));
}

/**
 * Last resort on process exit, which allows no asynchronous work: drops what is left from a
 * short-lived Node process, synchronously.
 */
export function dropAllBenchDatabasesNow(): void {
  for (const [name, serverUrl] of created) {
    const script = `const { Client } = require(${JSON.stringify(require.resolve('pg'))});
      const client = new Client({ connectionString: process.env.SERVER_URL });
      client.connect().then(() => client.query('DROP DATABASE IF EXISTS "${name}" WITH (FORCE)')).finally(() => client.end());`;
    spawnSync(process.execPath, ['-e', script], { env: { ...process.env, SERVER_URL: serverUrl }, stdio: 'ignore', timeout: 10_000 });
  }
  created.clear();
}

/** The server's version and durability settings, as SHOW reads them. */
export function readPostgresqlSettings(serverUrl: string): Promise<PostgresqlSettings> {
  return withClient(serverUrl, async (client) => {
    const show = async (setting: string) => String(Object.values((await client.query(`SHOW ${setting}`)).rows[0] as object)[0]);
    return { version: await show('server_version'), synchronousCommit: await show('synchronous_commit'), fsync: await show('fsync') };
  });
}

/**
 * CPU of the server processes serving one database (its sessions' backends), read from /proc: a
 * PostgreSQL service's database work runs there, not in the service's process. Works when the
 * server runs on this machine; otherwise every reading is empty.
 */
export class DatabaseBackends {
  private constructor(
    private readonly client: Client,
    private readonly database: string,
  ) {}

  static async open(serverUrl: string, database: string): Promise<DatabaseBackends> {
    const client = new Client({ connectionString: serverUrl, connectionTimeoutMillis: 10_000 });
    await client.connect();
    return new DatabaseBackends(client, database);
  }

  /** CPU ms used so far by each backend of the database, by pid. */
  async cpuMs(): Promise<Map<number, number>> {
    const { rows } = await this.client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [this.database]);
    const cpu = new Map<number, number>();
    for (const { pid } of rows) {
      const used = readCpuMs(pid)?.total;
      if (used !== undefined) cpu.set(pid, used);
    }
    return cpu;
  }

  close(): Promise<void> {
    return this.client.end();
  }
}

/** CPU used between two readings; a backend that started in between counts from zero. */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let used = 0;
  for (const [pid, ms] of after) used += ms - (before.get(pid) ?? 0);
  return used;
}
