import type { ChildProcess } from 'node:child_process';
import type { FloorProcess } from './floor-process';
import { countPersistedReplies } from './persisted-turns';
import { readCpuMs, readRssKiB, sampleRssPeak } from './proc-stats';
import { cpuBetween, type DatabaseBackends } from './postgresql-server';
import { nextMessage } from './processes';
import { scriptText, type FromLoad, type FromUpstream, type RoundResult, type RoundSpec, type TargetKind, type TargetSpec, type ToLoad, type ToUpstream } from './protocol';
import type { Scenario } from './scenarios';
import type { ServiceProcess } from './service-process';
import { summarize, type TargetSummary } from './stats';

export interface Harness {
  upstream: ChildProcess;
  load: ChildProcess;
  service: ServiceProcess;
  targets: Record<'direct' | 'service', TargetSpec>;
  /** The floor re-framer; when given, latency scenarios run floor rounds too (throughput ones do not). */
  floor?: FloorProcess;
  /** PostgreSQL: the server processes of the service's database, whose CPU is the service's database work. */
  databaseBackends?: DatabaseBackends;
}

/** The harness of one service among several measured side by side: its own service target, the shared upstream and load generator. */
export function harnessFor(
  bench: { upstream: ChildProcess; load: ChildProcess },
  service: ServiceProcess,
  directTarget: TargetSpec,
  serviceTarget: (service: ServiceProcess) => TargetSpec,
): Harness {
  return { upstream: bench.upstream, load: bench.load, service, targets: { direct: directTarget, service: serviceTarget(service) } };
}

/** One round as the report shows it (the streams themselves are kept only in the raw JSON). */
export interface RoundLog {
  target: TargetKind;
  warmup: boolean;
  streams: number;
  wallMs: number;
  /**
   * CPU used during the round by each process, in ms. serviceSystem: the service's CPU time in the
   * kernel; database: the PostgreSQL backends of its database (null on SQLite, which runs in the
   * service); floor: the floor re-framer (null when the run has none).
   */
  cpuMs: { service: number | null; serviceSystem: number | null; floor: number | null; upstream: number | null; load: number; database: number | null };
  loadLoopDelayP99Ms: number;
  /** Service and floor rounds: the RSS of that target's process just before the round and the highest seen during it, in KiB. */
  rssKiB?: { idle: number | null; peak: number | null };
}

/** RSS per open stream: the growth of a process's RSS while it holds a round's streams. */
export interface RssPerStream {
  idleKiB: number;
  peakKiB: number;
  openStreams: number;
  perStreamKiB: number;
}

export interface ScenarioOutcome {
  scenario: Scenario;
  direct: TargetSummary;
  service: TargetSummary;
  /** Absent when the floor was not measured (throughput scenarios, harnesses without one). */
  floor?: TargetSummary;
  rounds: RoundLog[];
  /** The measured rounds, raw (warm-ups are left out). */
  raw: RoundResult[];
  throughput?: { directStreamsPerSecond: number; serviceCompletedTurns: number; servicePersistedTurns: number; serviceTurnsPerSecond: number };
  /** The service's RSS per open stream (scenarios with measureRss). */
  rss?: RssPerStream;
  /** The floor's, measured in the same scenario. */
  floorRss?: RssPerStream;
}

/** Pause between rounds, so timers and writes left by one round do not land in the next. */
const SETTLE_MS = 300;
const STREAM_TIMEOUT_MS = 60_000;

const isResult = (message: unknown): message is Extract<FromLoad, { type: 'result' }> => (message as FromLoad).type === 'result';
const isScriptSet = (message: unknown): message is Extract<FromUpstream, { type: 'script-set' }> => (message as FromUpstream).type === 'script-set';
const isPrimed = (message: unknown): message is Extract<FromLoad, { type: 'primed' }> => (message as FromLoad).type === 'primed';

async function primeSockets(harness: Harness, spec: RoundSpec): Promise<void> {
  const answer = nextMessage(harness.load, isPrimed, 30_000, `opening sockets to ${spec.target.kind}`);
  harness.load.send({ type: 'prime', target: spec.target, sockets: spec.concurrency } satisfies ToLoad);
  await answer;
}

async function runRound(harness: Harness, spec: RoundSpec): Promise<RoundResult> {
  const answer = nextMessage(harness.load, isResult, STREAM_TIMEOUT_MS + 30_000, `round on ${spec.target.kind}`);
  harness.load.send({ type: 'round', spec } satisfies ToLoad);
  return (await answer).result;
}

function targetSpec(harness: Harness, target: TargetKind): TargetSpec {
  if (target !== 'floor') return harness.targets[target];
  if (!harness.floor) throw new Error('a floor round without a floor re-framer');
  return harness.floor.target;
}

function assertAlive(child: ChildProcess, what: string, scenario: Scenario): void {
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`${what} exited during a ${scenario.name} round (code ${child.exitCode}, signal ${child.signalCode})`);
  }
}

/** Runs one round and records the CPU and (for the service and the floor) RSS of the processes around it. */
export async function measuredRound(harness: Harness, scenario: Scenario, target: TargetKind, warmup: boolean): Promise<{ log: RoundLog; result: RoundResult }> {
  const { service, upstream, floor } = harness;
  const throughput = scenario.kind === 'throughput';
  const spec: RoundSpec = {
    target: targetSpec(harness, target),
    concurrency: scenario.concurrency,
    maxStreams: warmup ? scenario.warmupStreams : scenario.streamsPerRound,
    durationMs: throughput ? (warmup ? scenario.warmupMs : scenario.durationMs) : 0,
    expectedDeltas: scenario.script.deltas,
    detail: throughput ? 'summary' : 'chunks',
    streamTimeoutMs: STREAM_TIMEOUT_MS,
  };
  await primeSockets(harness, spec);
  const cpu = (pid: number | undefined) => (pid === undefined ? null : readCpuMs(pid));
  const before = { service: cpu(service.pid), floor: cpu(floor?.pid), upstream: cpu(upstream.pid), database: await harness.databaseBackends?.cpuMs() };
  // The process the round targets (none for direct: the upstream serves every target).
  const serverPid = target === 'service' ? service.pid : target === 'floor' ? floor?.pid : undefined;
  const idle = serverPid === undefined ? null : readRssKiB(serverPid);
  const sampler = serverPid === undefined ? undefined : sampleRssPeak(serverPid);
  const result = await runRound(harness, spec);
  const peak = sampler?.stop() ?? null;
  assertAlive(service.child, 'the service', scenario);
  if (floor) assertAlive(floor.child, 'the floor re-framer', scenario);
  const after = { service: cpu(service.pid), floor: cpu(floor?.pid), upstream: cpu(upstream.pid), database: await harness.databaseBackends?.cpuMs() };
  const diff = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : b - a);
  const log: RoundLog = {
    target,
    warmup,
    streams: result.streams.length,
    wallMs: result.wallMs,
    cpuMs: {
      service: diff(before.service?.total, after.service?.total),
      serviceSystem: diff(before.service?.system, after.service?.system),
      floor: diff(before.floor?.total, after.floor?.total),
      upstream: diff(before.upstream?.total, after.upstream?.total),
      load: result.loadCpuMs,
      database: before.database && after.database ? cpuBetween(before.database, after.database) : null,
    },
    loadLoopDelayP99Ms: result.loadLoopDelayP99Ms,
    ...(serverPid === undefined ? {} : { rssKiB: { idle, peak } }),
  };
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return { log, result };
}

/** Makes the paced upstream answer every request with the scenario's script. */
export async function setUpstreamScript(upstream: ChildProcess, scenario: Scenario): Promise<void> {
  const scriptSet = nextMessage(upstream, isScriptSet, 10_000, 'setting the upstream script');
  upstream.send({ type: 'script', script: scenario.script } satisfies ToUpstream);
  await scriptSet;
}

/**
 * Warm-up of each target, then `rounds` alternating measured rounds (direct, service, floor,
 * direct, …); returns the figures. The floor is measured in latency scenarios when the harness
 * has one: its targets compare bursts, and its rounds would lengthen a throughput scenario for
 * no target.
 */
export async function runScenario(harness: Harness, scenario: Scenario, progress: (line: string) => void): Promise<ScenarioOutcome> {
  await setUpstreamScript(harness.upstream, scenario);

  const withFloor = harness.floor !== undefined && scenario.kind === 'latency';
  const targets: TargetKind[] = withFloor ? ['direct', 'service', 'floor'] : ['direct', 'service'];
  const order: Array<[TargetKind, boolean]> = targets.map((target) => [target, true]);
  for (let round = 0; round < scenario.rounds; round++) order.push(...targets.map((target): [TargetKind, boolean] => [target, false]));

  const rounds: RoundLog[] = [];
  const raw: RoundResult[] = [];
  for (const [target, warmup] of order) {
    const { log, result } = await measuredRound(harness, scenario, target, warmup);
    progress(
      `  ${scenario.name} ${target}${warmup ? ' (warm-up)' : ''}: ${log.streams} streams in ${(log.wallMs / 1000).toFixed(2)} s, ` +
        `${result.streams.filter((s) => s.errors.length > 0).length} with errors`,
    );
    rounds.push(log);
    if (!warmup) raw.push(result);
  }

  const of = (target: TargetKind) => raw.filter((round) => round.target === target);
  const outcome: ScenarioOutcome = {
    scenario,
    direct: summarize(of('direct'), scenario.script.deltas),
    service: summarize(of('service'), scenario.script.deltas),
    ...(withFloor ? { floor: summarize(of('floor'), scenario.script.deltas) } : {}),
    rounds,
    raw,
  };
  if (scenario.kind === 'throughput') outcome.throughput = await throughputOf(harness, scenario, of('direct'), of('service'));
  if (scenario.measureRss) {
    outcome.rss = rssPerStream(scenario, rounds, 'service');
    if (withFloor) outcome.floorRss = rssPerStream(scenario, rounds, 'floor');
  }
  return outcome;
}

async function throughputOf(harness: Harness, scenario: Scenario, direct: RoundResult[], service: RoundResult[]): Promise<ScenarioOutcome['throughput']> {
  const seconds = (rounds: RoundResult[]) => rounds.reduce((sum, round) => sum + round.wallMs, 0) / 1000;
  const clean = (rounds: RoundResult[]) => rounds.flatMap((round) => round.streams).filter((stream) => stream.errors.length === 0);
  const completed = clean(service);
  const persisted = await countPersistedReplies(
    harness.service.databaseUrl,
    completed.map((stream) => stream.chatId!),
    scriptText(scenario.script),
  );
  return {
    directStreamsPerSecond: clean(direct).length / seconds(direct),
    serviceCompletedTurns: completed.length,
    servicePersistedTurns: persisted,
    serviceTurnsPerSecond: persisted / seconds(service),
  };
}

/**
 * (highest RSS during any of the scenario's rounds of `target` − RSS just before its first
 * round) / streams open at once. The first round is the warm-up: the growth it causes is what
 * holding that many streams costs, whereas a later round mostly reuses memory already taken.
 */
function rssPerStream(scenario: Scenario, rounds: RoundLog[], target: 'service' | 'floor'): RssPerStream | undefined {
  const targetRounds = rounds.filter((round) => round.target === target && round.rssKiB);
  const idleKiB = targetRounds[0]?.rssKiB?.idle ?? null;
  const peaks = targetRounds.map((round) => round.rssKiB?.peak ?? 0);
  if (idleKiB === null || peaks.length === 0) return undefined;
  const peakKiB = Math.max(...peaks);
  return { idleKiB, peakKiB, openStreams: scenario.concurrency, perStreamKiB: (peakKiB - idleKiB) / scenario.concurrency };
}
