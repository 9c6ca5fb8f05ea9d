/**
 * `npm run bench` (after the build): the benchmark of issues 6 and 16 in one go.
 *
 * Starts the paced upstream, the service, the floor re-framer (floor-reframer.ts) and the load
 * generator as separate processes, runs every scenario against the upstream directly, through
 * the service (on SQLite, then on PostgreSQL when BENCH_DATABASE_URL names a server) and, in
 * the latency scenarios, through the floor, then writes
 * bench/results.md (also printed; bench/analysis.md, the profile findings, is appended to it)
 * and the raw records to bench/tmp/last-run.json.
 * Every child process, the run's temp folder and its PostgreSQL database are removed on exit,
 * failure or Ctrl-C.
 *
 * BENCH_CPU_PROF=1 npm run bench: the service also writes a CPU profile to bench/tmp/profiles/.
 * BENCH_NODE_FLAGS='--max-semi-space-size=4' npm run bench: starts the service with these Node
 * flags (e.g. to see what garbage-collector settings do to memory per stream).
 * BENCH_SCENARIOS='c=1,c=500' npm run bench: only those scenarios (e.g. to profile one); the
 * partial report goes to bench/tmp/results.md so that bench/results.md always holds a full run.
 * BENCH_DATABASE_URL=postgres://user@host:5432/postgres npm run bench: the service is measured on
 * PostgreSQL too (POSTGRESQL_SCENARIOS), on a database the run creates on that server and drops
 * after; the report compares both engines.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { measureEnginesSideBySide, type SideBySide } from './engines-side-by-side';
import { startFloor } from './floor-process';
import { describeMachine } from './machine';
import { measureMetricsCost, type MetricsCost } from './metrics-cost';
import {
  createBenchDatabase,
  DatabaseBackends,
  databaseName,
  dropAllBenchDatabases,
  dropAllBenchDatabasesNow,
  dropBenchDatabase,
  readPostgresqlSettings,
} from './postgresql-server';
import { forkTs, killAllNow, nextMessage, stopAll, stopChild } from './processes';
import { readCpuMs, readMachineBusyMs, readRssKiB } from './proc-stats';
import type { FromLoad, FromUpstream, TargetSpec } from './protocol';
import { renderReport, type EngineRun } from './report';
import { runScenario, type ScenarioOutcome } from './run-scenario';
import { POSTGRESQL_SCENARIOS, SCENARIOS, type Scenario } from './scenarios';
import { logTail, startService, type ServiceProcess } from './service-process';

/**
 * The whole run should take about five minutes after the build (the floor's rounds and the
 * PostgreSQL bursts of issue 16 added about 100 s to 180 s); past this, it stops itself.
 */
const RUN_DEADLINE_MS = 420_000;
const API_VERSION = '2024-10-21';
const TMP_DIR = path.join(__dirname, 'tmp');

let runDir: string | undefined;
let service: ServiceProcess | undefined;

const isUpstreamReady = (message: unknown): message is Extract<FromUpstream, { type: 'ready' }> => (message as FromUpstream).type === 'ready';
const isLoadReady = (message: unknown): message is Extract<FromLoad, { type: 'ready' }> => (message as FromLoad).type === 'ready';

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Bench {
  upstream: ChildProcess;
  load: ChildProcess;
  fake: Extract<FromUpstream, { type: 'ready' }>;
  runDir: string;
}

/** CPU ms of the services already stopped and of their database backends: this run's, not other load. */
let stoppedServicesCpuMs = 0;

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machineBusyAtStart = readMachineBusyMs();
  mkdirSync(TMP_DIR, { recursive: true });
  runDir = mkdtempSync(path.join(TMP_DIR, 'run-'));
  const serverUrl = process.env.BENCH_DATABASE_URL || undefined;
  const postgresqlSettings = serverUrl ? await readPostgresqlSettings(serverUrl) : undefined;

  progress('bench: starting the paced upstream and the load generator');
  const upstream = forkTs('paced-upstream.ts');
  const fake = await nextMessage(upstream, isUpstreamReady, 30_000, 'paced upstream start');
  const load = forkTs('load.ts');
  await nextMessage(load, isLoadReady, 30_000, 'load generator start');
  const bench: Bench = { upstream, load, fake, runDir };

  const only = process.env.BENCH_SCENARIOS?.split(',').map((name) => name.trim());
  const scenarios = only ? SCENARIOS.filter((scenario) => only.includes(scenario.name)) : SCENARIOS;
  if (scenarios.length === 0) throw new Error(`BENCH_SCENARIOS names none of: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  const sqlite = await measureEngine(bench, 'SQLite', scenarios);
  const c500 = scenarios.find((scenario) => scenario.name === 'c=500');
  const metricsCost = c500 && (await measureMetricsOnAndOff(bench, c500));
  let postgresql: EngineRun | undefined;
  let sideBySide: SideBySide | undefined;
  if (serverUrl) {
    const onPostgresql = scenarios.filter((scenario) => POSTGRESQL_SCENARIOS.includes(scenario.name));
    const databaseUrl = await createBenchDatabase(serverUrl, 'run');
    postgresql = await measureEngine(bench, 'PostgreSQL', onPostgresql, { serverUrl, databaseUrl });
    await dropBenchDatabase(databaseUrl);
    const c1 = scenarios.find((scenario) => scenario.name === 'c=1');
    if (c1) sideBySide = await measureSideBySide(bench, c1, serverUrl);
  } else {
    progress('bench: BENCH_DATABASE_URL is not set: PostgreSQL is not measured');
  }

  const date = new Date();
  const runSeconds = (Date.now() - startedAt) / 1000;
  const otherCpuSeconds = cpuOfOthers(machineBusyAtStart, [upstream.pid, load.pid]);
  const analysisPath = path.join(__dirname, 'analysis.md');
  const analysis = existsSync(analysisPath) ? readFileSync(analysisPath, 'utf8') : undefined;
  const markdown = renderReport({ date, machine: describeMachine(), sqlite, postgresql, sideBySide, metricsCost, postgresqlSettings, runSeconds, otherCpuSeconds, analysis });
  const resultsPath = only ? path.join(TMP_DIR, 'results.md') : path.join(__dirname, 'results.md');
  writeFileSync(resultsPath, markdown);
  // The raw records of the last run (measured rounds), for a second look at any figure.
  const raw = (run: EngineRun | undefined) =>
    run && { serviceRssAtStartKiB: run.serviceRssAtStartKiB, floorRssAtStartKiB: run.floorRssAtStartKiB, scenarios: run.outcomes.map(({ raw, ...figures }) => ({ ...figures, rawRounds: raw })) };
  writeFileSync(
    path.join(TMP_DIR, 'last-run.json'),
    JSON.stringify({ date: date.toISOString(), machine: describeMachine(), postgresqlSettings, sqlite: raw(sqlite), postgresql: raw(postgresql) }),
  );
  process.stdout.write(`${markdown}\n`);
  progress(`bench: wrote ${path.relative(process.cwd(), resultsPath)} and bench/tmp/last-run.json in ${runSeconds.toFixed(0)} s`);
}

/**
 * Starts the service on `engine` (a fresh SQLite file, or `postgresql.databaseUrl`) and a fresh
 * floor re-framer, runs `scenarios` against them and the upstream, then stops both.
 */
async function measureEngine(
  bench: Bench,
  engine: EngineRun['engine'],
  scenarios: Scenario[],
  postgresql?: { serverUrl: string; databaseUrl: string },
): Promise<EngineRun> {
  const { upstream, load, fake } = bench;
  progress(`bench: ${engine}: starting the service`);
  service = await startService(bench.runDir, fake, { name: engine.toLowerCase(), databaseUrl: postgresql?.databaseUrl });
  // A fresh floor per engine, as the service: its RSS per stream is then a first c=1000 alike.
  const floor = await startFloor(directTarget(fake), bench.runDir);
  const databaseBackends = postgresql && (await DatabaseBackends.open(postgresql.serverUrl, databaseName(postgresql.databaseUrl)));
  try {
    const targets = { direct: directTarget(fake), service: serviceTarget(service) };
    const serviceRssAtStartKiB = readRssKiB(service.pid);
    const floorRssAtStartKiB = readRssKiB(floor.pid);
    const outcomes: ScenarioOutcome[] = [];
    for (const scenario of scenarios) {
      progress(`bench: ${engine}: ${scenario.name}: ${scenario.description}`);
      outcomes.push(await runScenario({ upstream, load, service, targets, floor, databaseBackends }, scenario, progress));
    }
    // Read before the stop: a process that has exited has no CPU figure left to read.
    const backendsCpuMs = [...((await databaseBackends?.cpuMs())?.values() ?? [])].reduce((sum, ms) => sum + ms, 0);
    stoppedServicesCpuMs += (readCpuMs(service.pid)?.total ?? 0) + (readCpuMs(floor.pid)?.total ?? 0) + backendsCpuMs;
    return { engine, outcomes, serviceRssAtStartKiB, floorRssAtStartKiB };
  } finally {
    await stopChild(floor.child, 5000);
    await databaseBackends?.close();
    // Its graceful exit is what writes a CPU profile (BENCH_CPU_PROF).
    await stopChild(service.child, process.env.BENCH_CPU_PROF ? 60_000 : 5000);
  }
}

function directTarget(fake: Bench['fake']): TargetSpec {
  return {
    kind: 'direct',
    port: Number(new URL(fake.url).port),
    path: `/openai/deployments/${encodeURIComponent(fake.deployment)}/chat/completions?api-version=${API_VERSION}`,
    headers: { 'api-key': fake.apiKey },
  };
}

function serviceTarget(service: ServiceProcess): TargetSpec {
  return { kind: 'service', port: service.port, path: '/api/chat', headers: { authorization: `Bearer ${service.apiKey}` } };
}

/** c=1 with a service on each engine up at once, rounds interleaved (see measureEnginesSideBySide). */
async function measureSideBySide(bench: Bench, scenario: Scenario, serverUrl: string): Promise<SideBySide> {
  progress('bench: both engines side by side: starting a service on each');
  const databaseUrl = await createBenchDatabase(serverUrl, 'side');
  const sqliteService = await startService(bench.runDir, bench.fake, { name: 'sqlite-side' });
  const postgresqlService = await startService(bench.runDir, bench.fake, { name: 'postgresql-side', databaseUrl });
  try {
    return await measureEnginesSideBySide(
      bench,
      scenario,
      { sqlite: sqliteService, postgresql: postgresqlService },
      directTarget(bench.fake),
      serviceTarget,
      progress,
    );
  } finally {
    for (const child of [sqliteService.child, postgresqlService.child]) {
      stoppedServicesCpuMs += readCpuMs(child.pid!)?.total ?? 0;
      await stopChild(child, 5000);
    }
    await dropBenchDatabase(databaseUrl);
  }
}

/** `scenario` against a service with metrics and one without, rounds interleaved (see measureMetricsCost). */
async function measureMetricsOnAndOff(bench: Bench, scenario: Scenario): Promise<MetricsCost> {
  progress('bench: metrics on and off: starting a service of each');
  const on = await startService(bench.runDir, bench.fake, { name: 'metrics-on' });
  const off = await startService(bench.runDir, bench.fake, { name: 'metrics-off', extraToml: '[metrics]\nenabled = false\n' });
  try {
    return await measureMetricsCost(bench, scenario, { on, off }, directTarget(bench.fake), serviceTarget, progress);
  } finally {
    for (const child of [on.child, off.child]) {
      stoppedServicesCpuMs += readCpuMs(child.pid!)?.total ?? 0;
      await stopChild(child, 5000);
    }
  }
}

/**
 * CPU-seconds the machine spent on processes other than this run's since `busyAtStart`: on a
 * shared machine, someone else's test run skews the figures, and the report says so.
 */
function cpuOfOthers(busyAtStart: number | null, pids: Array<number | undefined>): number | null {
  const busyNow = readMachineBusyMs();
  if (busyAtStart === null || busyNow === null) return null;
  const own = process.cpuUsage();
  let ours = (own.user + own.system) / 1000 + stoppedServicesCpuMs;
  for (const pid of pids) ours += (pid === undefined ? null : readCpuMs(pid)?.total) ?? 0;
  return Math.max(0, busyNow - busyAtStart - ours) / 1000;
}

let cleaning: Promise<void> | undefined;
/** Set by a signal: the children got it too (Ctrl-C hits the whole process group), so their exits are no failure to report. */
let interrupted = false;
/** Stops every child (each by its pid) and removes the run's temp folder; safe to call twice. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    // The service first, on its own: its graceful exit is what writes a CPU profile (BENCH_CPU_PROF).
    if (service) await stopChild(service.child, process.env.BENCH_CPU_PROF ? 60_000 : 5000);
    await stopAll(5000);
    await dropAllBenchDatabases();
    if (runDir && !process.env.BENCH_KEEP_LOGS) rmSync(runDir, { recursive: true, force: true });
  })();
  return cleaning;
}

function exitAfterCleanUp(code: number): void {
  void cleanUp().finally(() => process.exit(code));
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    // tsx relays the terminal's signal too: say it once.
    if (!interrupted) progress(`bench: ${signal}: stopping the child processes`);
    interrupted = true;
    exitAfterCleanUp(code);
  });
}
// Whatever path leads out, no child survives and no temp folder stays.
process.on('exit', () => {
  killAllNow();
  dropAllBenchDatabasesNow();
  if (runDir && !process.env.BENCH_KEEP_LOGS) rmSync(runDir, { recursive: true, force: true });
});

const deadline = setTimeout(() => {
  progress(`bench: still running after ${RUN_DEADLINE_MS / 1000} s: giving up`);
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
    progress(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (service) progress(`last lines of the service's log:\n${logTail(service)}`);
    exitAfterCleanUp(1);
  });
