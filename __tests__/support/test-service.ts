import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { buildService, PROJECT_ROOT, type Service } from '../../src/build-service';
import type { Config } from '../../src/config/config-schema';
import { loadConfig, type Environment } from '../../src/config/load-config';
import { resolveProvider } from '../../src/config/resolve-provider';
import { createHttpServer } from '../../src/http/create-server';
import { createLogger } from '../../src/logging/create-logger';
import type { FakeUpstream } from './fake-upstream';

export interface TestService extends Service {
  /** `http://127.0.0.1:PORT` of the running app. */
  url: string;
  config: Config;
  databasePath: string;
  /** Every log line the service wrote, as text. */
  logs: string[];
  /** Rows of a query against the service's SQLite file, read through a separate connection. */
  query<Row = Record<string, unknown>>(sql: string, ...parameters: unknown[]): Row[];
  /** Runs a write against the service's SQLite file (to set up odd states). */
  execute(sql: string, ...parameters: unknown[]): void;
  /** Stops the service as a process exit would, keeping its files (to start another on them). */
  stop(): Promise<void>;
  /** Stops the service and removes its files. */
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
  /** Opens this existing SQLite file (as a restarted process would) instead of a fresh one. */
  reuseDatabase?: string;
}

/**
 * The whole service, wired as `main.ts` wires it, on a fresh SQLite file and a random port.
 * Retries are quick (the fake's `retry-after-ms` is honoured) and logs are captured.
 */
export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const directory = mkdtempSync(path.join(tmpdir(), 'llm-stream-test-'));
  const databasePath = options.reuseDatabase ?? path.join(directory, 'data', 'chat.db');
  const environment: Environment = {
    DATABASE_URL: `file:${databasePath}`,
    LOG_LEVEL: 'debug',
    ...azureEnvironment(options.upstream),
    ...options.environment,
  };
  const configPath = path.join(directory, 'config.toml');
  writeFileSync(configPath, `${options.auth ? '' : '[auth]\nenabled = false\n'}${options.configToml ?? ''}`);
  environment.CONFIG_PATH = configPath;
  const config = loadConfig(path.join(PROJECT_ROOT, 'config', 'default.toml'), environment);
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger(config.logging.level, destination);
  const service = await buildService({ config, providerSettings: resolveProvider(config, environment), logger });
  const server = createHttpServer(service.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const database = new Database(databasePath);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await closeServer(server);
      await service.chat.shutdown();
      await service.lease.stop();
      await service.store.close();
      database.close();
    })());

  return {
    ...service,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    config,
    databasePath,
    logs,
    query: <Row>(sql: string, ...parameters: unknown[]) => database.prepare(sql).all(...parameters) as Row[],
    execute: (sql: string, ...parameters: unknown[]) => void database.prepare(sql).run(...parameters),
    stop,
    async close() {
      await stop();
      rmSync(directory, { recursive: true, force: true });
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
