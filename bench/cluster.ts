/**
 * `npm run bench:cluster` (after the build): the two cost targets of the multi-instance issue,
 * each beside its baseline measured in the same run.
 *
 * 1. Per-delta CPU of a multi-instance service (M1, Redis, an idle peer M2) against a
 *    single-instance one (S1), with no remote reader: c=100 and c=500, rounds interleaved.
 * 2. The lag of a reader resuming a reply on M2 behind the reader on M1, which generates it.
 *
 * Needs a PostgreSQL server (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
 * and a Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379), both possibly shared: the run
 * creates its own databases and drops them after, and works under its own Redis key prefix whose
 * keys it deletes after (never FLUSHDB). Writes bench/cluster-results.md (also printed), and the
 * per-round figures and the lag rounds raw to bench/tmp/cluster-last-run.json. Every child
 * process, database and key is removed on exit, failure or Ctrl-C. The run's folder (the
 * services' logs) is kept when the run failed or saw errors or mismatches, or with
 * BENCH_KEEP_LOGS=1.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { measureCpuPerDelta, type CpuLevel, type CpuSide } from './cluster-cpu';
import { followLoadReady, measureFollowLag, type FollowLag } from './cluster-lag';
import { renderClusterReport } from './cluster-report';
import { describeMachine } from './machine';
import {
  createBenchDatabase,
  DatabaseBackends,
  databaseName,
  dropAllBenchDatabases,
  dropAllBenchDatabasesNow,
  readPostgresqlSettings,
} from './postgresql-server';
import { forkTs, killAllNow, nextMessage, stopAll, stopChild } from './processes';
import { readCpuMs, readMachineBusyMs } from './proc-stats';
import type { FromLoad, FromUpstream, TargetSpec } from './protocol';
import { createBenchPrefix, deleteAllBenchPrefixes, deleteAllBenchPrefixesNow, readRedisStats } from './redis-server';
import { SCENARIOS, type Scenario } from './scenarios';
import { logTail, RAISED_LIMITS_TOML, startService, type ServiceProcess } from './service-process';

/** The whole run must stay under four minutes with the build; past this, it stops itself. */
const RUN_DEADLINE_MS = 225_000;
const TMP_DIR = path.join(__dirname, 'tmp');
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/**
 * Measured rounds per service. One round's CPU per delta moves by up to a third from the next's
 * (the machine drifts; at c=500 a service that falls behind writes several deltas at once, which
 * costs less per delta), so the ratio needs several rounds of each.
 */
const CPU_ROUNDS: Record<string, number> = { 'c=100': 12, 'c=500': 8 };
const LAG_ROUNDS = 3;
/**
 * Appended to RAISED_LIMITS_TOML, whose last table is [limits]: the first line goes there. The lag
 * rounds hold two event streams per chat (A's and B's) on one key, which the default open-stream
 * limit (4 × concurrent_streams) would allow too, but the limit is not what is measured.
 */
const MORE_LIMITS_TOML = 'max_open_streams = 1000000\n';

let runDir: string | undefined;
/** Set when the run failed or saw errors or mismatches: the services' logs in `runDir` are what to read then. */
let keepRunDir = Boolean(process.env.BENCH_KEEP_LOGS);
const services: ServiceProcess[] = [];

const isUpstreamReady = (message: unknown): message is Extract<FromUpstream, { type: 'ready' }> => (message as FromUpstream).type === 'ready';
const isLoadReady = (message: unknown): message is Extract<FromLoad, { type: 'ready' }> => (message as FromLoad).type === 'ready';

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** CPU ms of the services already stopped and of their database backends: this run's, not other load. */
let ourStoppedCpuMs = 0;

/**
 * Runs that answer a question of their own write their report to bench/tmp/cluster-results.md, so
 * that bench/cluster-results.md always holds a full run:
 * - BENCH_CLUSTER_PARTS=cpu or =lag: only that part.
 * - BENCH_LAG_STREAMS=30: the lag at another concurrency (to tell the relay's own cost from the
 *   machine's cores being all taken).
 * - BENCH_CLUSTER_AA=1: M1 runs single-instance too (no REDIS_URL), so the CPU ratio shows what
 *   two identical services measure apart on this machine: the resolution of the CPU target.
 */
const onlyLag = process.env.BENCH_CLUSTER_PARTS === 'lag';
const onlyCpu = process.env.BENCH_CLUSTER_PARTS === 'cpu';
const lagStreams = Number(process.env.BENCH_LAG_STREAMS) || 100;
const aToA = process.env.BENCH_CLUSTER_AA === '1';

function lagScenario(): Scenario {
  const base = scenario('c=100');
  if (lagStreams === 100) return base;
  return { ...base, name: `c=${lagStreams}`, description: base.description.replace('100', String(lagStreams)), concurrency: lagStreams, streamsPerRound: lagStreams, warmupStreams: lagStreams };
}

function scenario(name: string): Scenario {
  const found = SCENARIOS.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`bench/scenarios.ts has no scenario ${name}`);
  return { ...found, rounds: CPU_ROUNDS[name] ?? found.rounds };
}

function serviceTarget(service: ServiceProcess): TargetSpec {
  return { kind: 'service', port: service.port, path: '/api/chat', headers: { authorization: `Bearer ${service.apiKey}` } };
}

function clusterToml(prefix: string): string {
  return `[cluster]\nredis_prefix = "${prefix}"\n`;
}

interface Cluster {
  s1: ServiceProcess;
  m1: ServiceProcess;
  m2: ServiceProcess;
  sides: Record<'S1' | 'M1', CpuSide>;
  configToml: string;
}

/**
 * S1 on its own fresh database; M1 and M2 on another, sharing it and Redis. M2 starts after M1
 * has migrated the database and created its key, which is then valid on both.
 */
async function startServices(fake: Extract<FromUpstream, { type: 'ready' }>, serverUrl: string, redisUrl: string): Promise<Cluster> {
  const dir = runDir!;
  const s1Database = await createBenchDatabase(serverUrl, 's1');
  const clusterDatabase = await createBenchDatabase(serverUrl, 'cluster');
  const prefix = createBenchPrefix(redisUrl);
  const extraToml = MORE_LIMITS_TOML + clusterToml(prefix);
  const multi = (instanceId: string) => ({ REDIS_URL: redisUrl, INSTANCE_ID: instanceId });

  progress(`bench:cluster: starting S1 (single instance), M1 and M2 (multi-instance, Redis prefix ${prefix})`);
  // S1 gets the same [cluster] table: with no REDIS_URL it is unused, and the configs differ in nothing else.
  const s1 = await startService(dir, fake, { name: 's1', databaseUrl: s1Database, extraToml });
  services.push(s1);
  const m1 = await startService(dir, fake, {
    name: 'm1',
    databaseUrl: clusterDatabase,
    extraToml,
    environment: aToA ? { INSTANCE_ID: 'bench-m1' } : multi('bench-m1'),
  });
  services.push(m1);
  const m2Started = await startService(dir, fake, { name: 'm2', databaseUrl: clusterDatabase, extraToml, environment: multi('bench-m2'), expectFirstKey: false });
  const m2 = { ...m2Started, apiKey: m1.apiKey };
  services.push(m2);
  const backends = (service: ServiceProcess) => DatabaseBackends.open(serverUrl, databaseName(service.databaseUrl));
  return {
    s1,
    m1,
    m2,
    sides: { S1: { service: s1, databaseBackends: await backends(s1) }, M1: { service: m1, databaseBackends: await backends(m1) } },
    configToml: RAISED_LIMITS_TOML + extraToml,
  };
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machineBusyAtStart = readMachineBusyMs();
  mkdirSync(TMP_DIR, { recursive: true });
  runDir = mkdtempSync(path.join(TMP_DIR, 'cluster-'));
  const serverUrl = process.env.BENCH_DATABASE_URL || DEFAULT_DATABASE_URL;
  const redisUrl = process.env.BENCH_REDIS_URL || DEFAULT_REDIS_URL;
  const postgresqlSettings = await readPostgresqlSettings(serverUrl);
  const redisAtStart = await readRedisStats(redisUrl);

  progress('bench:cluster: starting the paced upstream and the load generators');
  const upstream = forkTs('paced-upstream.ts');
  const fake = await nextMessage(upstream, isUpstreamReady, 30_000, 'paced upstream start');
  const load = forkTs('load.ts');
  await nextMessage(load, isLoadReady, 30_000, 'load generator start');
  const followLoad = forkTs('cluster-follow.ts');
  await followLoadReady(followLoad);

  const cluster = await startServices(fake, serverUrl, redisUrl);
  let cpu: CpuLevel[];
  let lagRun: FollowLag;
  try {
    progress('bench:cluster: 1. CPU per delta, S1 and M1 interleaved (M2 idle)');
    cpu = await measureCpuPerDelta({ upstream, load }, onlyLag ? [] : [scenario('c=100'), scenario('c=500')], cluster.sides, {
      idlePeer: cluster.m2,
      redisUrl,
      target: serviceTarget,
      progress,
    });
    progress('bench:cluster: 2. remote reader lag, M1 generates; B on M2, and on M1 for the baseline, interleaved');
    lagRun = await measureFollowLag({ upstream, followLoad }, lagScenario(), { owner: cluster.m1, remote: cluster.m2 }, {
      rounds: onlyCpu ? 0 : LAG_ROUNDS,
      endpoint: (service) => ({ port: service.port, headers: { authorization: `Bearer ${service.apiKey}` } }),
      progress,
    });
    // The database backends' CPU is this run's too; read before the stop, while their sessions last.
    for (const side of Object.values(cluster.sides)) ourStoppedCpuMs += [...(await side.databaseBackends.cpuMs()).values()].reduce((sum, ms) => sum + ms, 0);
  } finally {
    await Promise.all(Object.values(cluster.sides).map((side) => side.databaseBackends.close().catch(() => undefined)));
  }
  const { outcomes: lag, raw: lagRounds } = lagRun;

  await stopServices();
  const cpuErrors = cpu.some((level) => level.summaries.S1.errors + level.summaries.M1.errors > 0);
  const lagProblems = Object.values(lag).some(({ errors, mismatches: m }) => errors + m.text + m.frames + m.followerIds + m.ownerText > 0);
  if (cpuErrors || lagProblems) keepRunDir = true;
  const redisAtEnd = await readRedisStats(redisUrl);
  const runSeconds = (Date.now() - startedAt) / 1000;
  const otherCpuSeconds = cpuOfOthers(machineBusyAtStart, [upstream, load, followLoad], redisAtEnd.cpuMs - redisAtStart.cpuMs);
  const date = new Date();
  const markdown = renderClusterReport({
    date,
    machine: describeMachine(),
    postgresqlSettings,
    redisVersion: redisAtStart.version,
    runSeconds,
    otherCpuSeconds,
    configToml: cluster.configToml,
    cpu,
    lag,
  });
  const partial = onlyLag || onlyCpu || aToA || lagStreams !== 100;
  writeFileSync(partial ? path.join(TMP_DIR, 'cluster-results.md') : path.join(__dirname, 'cluster-results.md'), markdown);
  writeFileSync(
    path.join(TMP_DIR, 'cluster-last-run.json'),
    // The lag rounds raw (every delta's arrival on each side, by id), for a second look at the lag.
    JSON.stringify({ date: date.toISOString(), machine: describeMachine(), cpu: cpu.map(({ scenario: s, ...figures }) => ({ scenario: s.name, ...figures })), lag, lagRounds }),
  );
  process.stdout.write(`${markdown}\n`);
  progress(`bench:cluster: wrote ${partial ? 'bench/tmp/' : 'bench/'}cluster-results.md and bench/tmp/cluster-last-run.json in ${runSeconds.toFixed(0)} s`);
}

/** Stops the services, noting their CPU first (a process that has exited has no figure left to read). */
async function stopServices(): Promise<void> {
  for (const service of services.splice(0)) {
    ourStoppedCpuMs += readCpuMs(service.pid)?.total ?? 0;
    await stopChild(service.child, 5000);
  }
}

/**
 * CPU-seconds the machine spent on processes other than this run's since `busyAtStart`: on a
 * shared machine, someone else's test run skews the figures, and the report says so.
 */
function cpuOfOthers(busyAtStart: number | null, children: ChildProcess[], redisCpuMs: number): number | null {
  const busyNow = readMachineBusyMs();
  if (busyAtStart === null || busyNow === null) return null;
  const own = process.cpuUsage();
  let ours = (own.user + own.system) / 1000 + ourStoppedCpuMs + redisCpuMs;
  for (const child of children) ours += (child.pid === undefined ? null : readCpuMs(child.pid)?.total) ?? 0;
  return Math.max(0, busyNow - busyAtStart - ours) / 1000;
}

let cleaning: Promise<void> | undefined;
/** Set by a signal: the children got it too (Ctrl-C hits the whole process group), so their exits are no failure to report. */
let interrupted = false;
/** Stops every child (each by its pid), drops the databases, deletes the Redis keys; safe to call twice. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll(5000);
    // After the services: until they stop, they may write keys again (lease renewals).
    await Promise.all([dropAllBenchDatabases(), deleteAllBenchPrefixes()]);
    if (runDir && !keepRunDir) rmSync(runDir, { recursive: true, force: true });
    if (runDir && keepRunDir) progress(`bench:cluster: the services' logs are kept in ${path.relative(process.cwd(), runDir)}`);
  })();
  return cleaning;
}

function exitAfterCleanUp(code: number): void {
  void cleanUp().finally(() => process.exit(code));
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    // tsx relays the terminal's signal too: say it once.
    if (!interrupted) progress(`bench:cluster: ${signal}: stopping the child processes`);
    interrupted = true;
    exitAfterCleanUp(code);
  });
}
// Whatever path leads out, no child survives, and no database, key or temp folder stays.
process.on('exit', () => {
  killAllNow();
  dropAllBenchDatabasesNow();
  deleteAllBenchPrefixesNow();
  if (runDir && !keepRunDir) rmSync(runDir, { recursive: true, force: true });
});

const deadline = setTimeout(() => {
  progress(`bench:cluster: still running after ${RUN_DEADLINE_MS / 1000} s: giving up`);
  for (const service of services) progress(`last lines of ${path.basename(service.logPath)}:\n${logTail(service)}`);
  exitAfterCleanUp(1);
}, RUN_DEADLINE_MS);
deadline.unref();

main()
  .then(() => cleanUp())
  .then(() => process.exit(0))
  .catch(async (error: unknown) => {
    // A child that died of Ctrl-C may be noticed just before our own SIGINT handler runs.
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (interrupted) return; // the signal handler is already cleaning up
    progress(`bench:cluster failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    // The services' logs, if any started, say what went wrong on their side.
    keepRunDir = runDir !== undefined && readdirSync(runDir).length > 0;
    for (const service of services) progress(`last lines of ${path.basename(service.logPath)}:\n${logTail(service)}`);
    exitAfterCleanUp(1);
  });
