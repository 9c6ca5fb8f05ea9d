import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ApiKeyRecord } from './auth/api-keys';
import { buildService, PROJECT_ROOT } from './build-service';
import { ConfigError } from './config/config-error';
import { loadConfig, workerCount } from './config/load-config';
import { resolveProvider } from './config/resolve-provider';
import { createHttpServer } from './http/create-server';
import { describeListenFailure } from './http/describe-listen-failure';
import { createLogger } from './logging/create-logger';
import { runWorkers, WORKER_NUMBER_VARIABLE } from './run-workers';

/** The only module that reads the environment and listens. */
async function main(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const environment = process.env;
  const config = loadConfig(path.join(PROJECT_ROOT, 'config', 'default.toml'), environment);
  const providerSettings = resolveProvider(config, environment);
  const workers = workerCount(config);
  if (workers > 1 && cluster.isPrimary) {
    runWorkers(workers, createLogger(config.logging.level).child({ role: 'primary' }));
    return;
  }
  const worker = cluster.isWorker ? Number(environment[WORKER_NUMBER_VARIABLE]) : undefined;
  const root = createLogger(config.logging.level);
  const logger = worker === undefined ? root : root.child({ worker });

  // Owns the database once this returns: a start refused because another server owns it says
  // only that, with nothing logged before.
  const { app, chat, store, provider, keys, lease, cluster: shared } = await buildService({ config, providerSettings, logger, worker });
  if (providerSettings.kind === 'simulator') {
    logger.warn(
      'No model provider is configured: replies come from the built-in SIMULATOR. ' +
        'Set AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT_NAME (or OPENAI_API_KEY) to use a real model.',
    );
  }

  const server = createHttpServer(app);
  // An open service without keys stays on this machine unless HOST says otherwise.
  const host = config.server.host ?? (config.auth.enabled ? '0.0.0.0' : '127.0.0.1');
  if (!config.auth.enabled && !isLoopback(host)) {
    logger.warn({ host }, 'Auth is off and the service listens beyond this machine: anyone who can reach it can use it and read every chat');
  }
  // Before the 'listening' line: whoever waits for it may send a signal at once.
  stopOnSignals(logger, async () => {
    // No new connections; open streams get the grace period to finish, then are stopped.
    server.close();
    await chat.shutdown(config.streaming.shutdown_grace_seconds * 1000);
    server.closeAllConnections();
    await shared?.close();
    await lease.stop();
    await store.close();
  });
  try {
    await listen(server, config.server.port, host);
  } catch (error) {
    // A setting to change, not a bug: one line that says which, without a stack to bury it.
    process.stderr.write(`${describeListenFailure(error as NodeJS.ErrnoException, { host, port: config.server.port })}\n`);
    await shared?.close();
    await lease.stop({ release: false });
    await store.close();
    process.exit(1);
  }
  // Made once the port is open: a start that cannot listen must not show a key and then fail.
  const firstKey = await keys?.createFirstKey();
  if (firstKey) showFirstKey(firstKey, logger);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  logger.info({ host, port, auth: config.auth.enabled, provider: provider.name, model: provider.model }, 'listening');
}

/** On the first SIGTERM or SIGINT, runs `shutdown`, then exits 0; signals while it runs are ignored. */
function stopOnSignals(logger: Logger, shutdown: () => Promise<void>): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await shutdown();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Resolves once `server` listens on `host`:`port`; rejects with the error `listen` emitted. */
function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Shows the key made at the first start, the one time it exists in clear (only its hash is
 * stored): on stderr, whatever the log level, and never in the log, whose files are kept and
 * shipped where a secret does not belong. The log records that it was created, and its id.
 */
function showFirstKey({ key, record }: { key: string; record: ApiKeyRecord }, logger: Logger): void {
  process.stderr.write(
    `First start: created the API key "${record.name}": ${key} . Send it as "Authorization: Bearer <key>". ` +
      'It is not shown again. Create more with: npm run keys -- create --name NAME\n',
  );
  logger.info({ keyId: record.id }, `created the first API key "${record.name}"; it is shown once, on stderr`);
}

/** 127.0.0.0/8 and ::1 in any spelling, IPv4-mapped (::ffff:127.0.0.1) included. */
function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 0) return false;
  const loopback = new BlockList();
  loopback.addSubnet('127.0.0.0', 8, 'ipv4');
  loopback.addAddress('::1', 'ipv6');
  return loopback.check(host, family === 6 ? 'ipv6' : 'ipv4');
}

main().catch((error: unknown) => {
  const detail = error instanceof ConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`Cannot start: ${detail}\n`);
  process.exit(1);
});
