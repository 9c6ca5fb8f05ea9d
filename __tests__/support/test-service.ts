import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { buildService, PROJECT_ROOT, type Service } from '../../src/build-service';
import type { Config } from '../../src/config/config-schema';
import { loadConfig, type Environment } from '../../src/config/load-config';
import { resolveProvider } from '../../src/config/resolve-provider';
import { createHttpServer } from '../../src/http/create-server';
import { createLogger } from '../../src/logging/create-logger';
import { databaseEngine } from '../../src/store/migrate-database';
import { sqlitePath } from '../../src/store/open-sqlite-store';
import type { FakeUpstream } from './fake-upstream';
import { createPostgresDatabase, dropPostgresDatabases } from './postgres-database';
import { connectPostgresql, connectSqlite, type SqlConnection } from './sql-connection';
import { defaultEngine, type TestEngine } from './test-engines';

export interface TestService extends Service {
  /** `http://127.0.0.1:PORT` of the running app. */
  url: string;
  config: Config;
  engine: TestEngine;
  /** The service's DATABASE_URL (`file:…` or `postgres://…`). */
  databaseUrl: string;
  /** The service's SQLite file; throws on PostgreSQL. */
  databasePath: string;
  /** Every log line the service wrote, as text. */
  logs: string[];
  /**
   * Rows of a query against the service's database, read through a separate connection. SQL and
   * rows are the same on both engines (see SqlConnection): quoted identifiers, `?` parameters.
   */
  query: SqlConnection['query'];
  /** Runs a write against the service's database (to set up odd states). */
  execute: SqlConnection['execute'];
  /** Stops the service as a process exit would, keeping its database (to start another on it). */
  stop(): Promise<void>;
  /** Stops the service and removes its files and the database it created. */
  close(): Promise<void>;
}

export interface TestServiceOptions {
  /** Points the service at this fake as Azure OpenAI (unless `environment` names a provider). */
  upstream?: FakeUpstream;
  /** TOML written to a file named by CONFIG_PATH. */
  configToml?: string;
  /** Require API keys (default: off, so that tests about other things need none). */
  auth?: boolean;
  environment?: Environment;
  /** The engine of the fresh database (default: see defaultEngine). */
  engine?: TestEngine;
  /**
   * Opens this existing database, a DATABASE_URL such as another test service's `databaseUrl`
   * (as a restarted process would), instead of a fresh one. It is left for its creator to remove.
   */
  reuseDatabase?: string;
}

/**
 * The whole service, wired as `main.ts` wires it, on a fresh database and a random port: a SQLite
 * file, or a PostgreSQL database of its own on POSTGRES_ADMIN_URL. Retries are quick (the fake's
 * `retry-after-ms` is honoured) and logs are captured.
 */
export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const directory = mkdtempSync(path.join(tmpdir(), 'llm-stream-test-'));
  const engine = options.reuseDatabase ? databaseEngine(options.reuseDatabase) : (options.engine ?? defaultEngine());
  const createdDatabase = engine === 'postgresql' && !options.reuseDatabase ? await createPostgresDatabase() : undefined;
  const environment: Environment = {
    DATABASE_URL: options.reuseDatabase ?? createdDatabase ?? `file:${path.join(directory, 'data', 'chat.db')}`,
    LOG_LEVEL: 'debug',
    ...azureEnvironment(options.upstream),
    ...options.environment,
  };
  const configPath = path.join(directory, 'config.toml');
  writeFileSync(configPath, `${options.auth ? '' : '[auth]\nenabled = false\n'}${options.configToml ?? ''}`);
  environment.CONFIG_PATH = configPath;
  const config = loadConfig(path.join(PROJECT_ROOT, 'config', 'default.toml'), environment);
  const databaseUrl = config.database.url;
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger(config.logging.level, destination);
  const removeFiles = async () => {
    rmSync(directory, { recursive: true, force: true });
    if (createdDatabase) await dropPostgresDatabases([createdDatabase]);
  };
  const service = await buildService({ config, providerSettings: resolveProvider(config, environment), logger }).catch(async (error: unknown) => {
    await removeFiles();
    throw error;
  });
  // Opened after the service, which creates and migrates the database.
  const database = engine === 'postgresql' ? await connectPostgresql(databaseUrl) : connectSqlite(sqlitePath(databaseUrl));
  const server = createHttpServer(service.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await closeServer(server);
      await service.chat.shutdown();
      await service.cluster?.close();
      await service.lease.stop();
      await service.store.close();
      await database.close();
    })());

  return {
    ...service,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    config,
    engine,
    databaseUrl,
    get databasePath() {
      if (engine !== 'sqlite') throw new Error(`a ${engine} test service has no database file`);
      return sqlitePath(databaseUrl);
    },
    logs,
    query: database.query,
    execute: database.execute,
    stop,
    async close() {
      await stop();
      await removeFiles();
    },
  };
}

function azureEnvironment(upstream: FakeUpstream | undefined): Environment {
  if (!upstream) return {};
  return {
    AZURE_OPENAI_API_KEY: upstream.apiKey,
    AZURE_OPENAI_ENDPOINT: `${upstream.url}/`,
    AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
  };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
