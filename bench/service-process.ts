import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT, track } from './processes';

/**
 * Only the per-key limits are raised, so that thousands of streams from one key are not refused
 * with 429; every other setting is the default.
 */
export const RAISED_LIMITS_TOML = '[limits]\nrequests_per_minute = 100000000\nconcurrent_streams = 100000\n';

export const PROFILE_DIR = path.join(PROJECT_ROOT, 'bench', 'tmp', 'profiles');

export interface ServiceProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  apiKey: string;
  /** The DATABASE_URL the service runs on: `file:<path>` (SQLite) or a postgres:// URL. */
  databaseUrl: string;
  logPath: string;
}

export interface ServiceOptions {
  /** A PostgreSQL database to run on; by default a fresh SQLite file in the run's folder. */
  databaseUrl?: string;
  /** Names the service's files in `runDir`, so that several services of one run keep their own. */
  name?: string;
  /** More environment variables for the service (e.g. NODE_OPTIONS for a bench hook, REDIS_URL and INSTANCE_ID for a cluster). */
  environment?: NodeJS.ProcessEnv;
  /** Settings appended to the raised limits of the config file (TOML). */
  extraToml?: string;
  /** Wait for the first start's API key on stderr (a fresh database; the default); false when the database has its key already. */
  expectFirstKey?: boolean;
}

/**
 * Settings of the service that must not leak in from the shell running the benchmark: a REDIS_URL
 * or WORKERS left in the shell would turn a single-instance measurement into a multi-instance one
 * (`options.environment` sets them when a run means it).
 */
const SERVICE_VARIABLES = /^(AZURE_|OPENAI_)|^(NODE_ENV|NODE_OPTIONS|PORT|HOST|DATABASE_URL|CONFIG_PATH|LOG_LEVEL|REDIS_URL|WORKERS|INSTANCE_ID|METRICS_ENABLED|METRICS_TOKEN)$/;

/**
 * Starts the production build (`node dist/main.js`) against the paced upstream, with a fresh
 * SQLite file in `runDir` or the database `options.databaseUrl` names, and waits for its
 * first-start API key (on stderr, unless `expectFirstKey` is false) and its port (in the log).
 *
 * Its working directory is `runDir`, so a developer's `.env` is not read. Its stdout (pino JSON)
 * goes to a file: a pipe the orchestrator is slow to drain could block the service's logging.
 */
export async function startService(
  runDir: string,
  upstream: { url: string; apiKey: string; deployment: string },
  options: ServiceOptions = {},
): Promise<ServiceProcess> {
  const mainPath = path.join(PROJECT_ROOT, 'dist', 'main.js');
  if (!existsSync(mainPath)) throw new Error(`${mainPath} is missing: run "npm run bench", which builds first`);
  const serviceName = options.name ?? 'service';
  const configPath = path.join(runDir, `${serviceName}-config.toml`);
  writeFileSync(configPath, RAISED_LIMITS_TOML + (options.extraToml ?? ''));
  const databaseUrl = options.databaseUrl ?? `file:${path.join(runDir, `${serviceName}.db`)}`;
  const logPath = path.join(runDir, `${serviceName}.log`);
  const errPath = path.join(runDir, `${serviceName}.err`);

  const environment: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!SERVICE_VARIABLES.test(name)) environment[name] = value;
  Object.assign(environment, {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: '0', // the service logs the port it got
    DATABASE_URL: databaseUrl,
    CONFIG_PATH: configPath,
    AZURE_OPENAI_API_KEY: upstream.apiKey,
    AZURE_OPENAI_ENDPOINT: upstream.url,
    AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
    ...options.environment,
  });

  const out = openSync(logPath, 'w');
  const err = openSync(errPath, 'w');
  // BENCH_CPU_PROF=1: the service writes a V8 CPU profile to bench/tmp/profiles/ when it exits
  // (open it in Chrome DevTools or speedscope), to see where its time goes under this load.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const extra = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child = track(spawn(process.execPath, [...profile, ...extra, mainPath], { cwd: runDir, env: environment, stdio: ['ignore', out, err] }));
  closeSync(out);
  closeSync(err);

  // Bounded wait: 30 s, polling the log file.
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the service exited at start: ${readFileSync(errPath, 'utf8').trim() || '(no stderr)'}`);
    }
    const started = readStartLines(logPath, errPath, options.expectFirstKey ?? true);
    if (started) return { child, pid: child.pid!, ...started, databaseUrl, logPath };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const waitedFor = options.expectFirstKey === false ? 'log "listening"' : 'print its API key and log "listening"';
  throw new Error(`the service (${serviceName}) did not ${waitedFor} within 30 s`);
}

/**
 * The API key the first start prints on stderr (never in the log; '' when none is expected) and
 * the port of the "listening" log line, once both are written.
 */
function readStartLines(logPath: string, errPath: string, expectFirstKey: boolean): { apiKey: string; port: number } | undefined {
  // A database seeded with its key prints none: the caller knows it.
  const apiKey = expectFirstKey ? /^First start: created the API key "default": (lss_[A-Za-z0-9_-]+) \./m.exec(readFileSync(errPath, 'utf8'))?.[1] : '';
  let port: number | undefined;
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { msg?: unknown; port?: unknown };
    try {
      entry = JSON.parse(line) as { msg?: unknown; port?: unknown };
    } catch {
      continue; // a line still being written
    }
    if (entry.msg === 'listening' && typeof entry.port === 'number') port = entry.port;
  }
  return apiKey !== undefined && port ? { apiKey, port } : undefined;
}

/** The last lines of the service's log, to show when the run fails. */
export function logTail(service: ServiceProcess, lines = 15): string {
  try {
    // Lines cut at 400 characters: an error's stack would fill the screen.
    const tail = readFileSync(service.logPath, 'utf8').trimEnd().split('\n').slice(-lines);
    return tail.map((line) => (line.length > 400 ? `${line.slice(0, 400)}…` : line)).join('\n');
  } catch {
    return '(no log)';
  }
}
