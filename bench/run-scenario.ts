import type { ChildProcess } from 'node:child_process';
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
  targets: Record<TargetKind, TargetSpec>;
  /** PostgreSQL: the server processes of the service's database, whose CPU is the service's database work. */
  databaseBackends?: DatabaseBackends;
}

/** One round as the report shows it (the streams themselves are kept only in the raw JSON). */
export interface RoundLog {
  target: TargetKind;
  warmup: boolean;
  streams: number;
  wallMs: number;
  /**
   * CPU used during the round by each process, in ms. serviceSystem: the service's CPU time in the
   * kernel; database: the PostgreSQL backends of its database (null on SQLite, which runs in the service).
   */
  cpuMs: { service: number | null; serviceSystem: number | null; upstream: number | null; load: number; database: number | null };
  loadLoopDelayP99Ms: number;
  /** Service rounds: its RSS just before the round and the highest seen during it, in KiB. */
  serviceRssKiB?: { idle: number | null; peak: number | null };
}

export interface ScenarioOutcome {
  scenario: Scenario;
  direct: TargetSummary;
  service: TargetSummary;
  rounds: RoundLog[];
  /** The measured rounds, raw (warm-ups are left out). */
  raw: RoundResult[];
  throughput?: { directStreamsPerSecond: number; serviceCompletedTurns: number; servicePersistedTurns: number; serviceTurnsPerSecond: number };
  rss?: { idleKiB: number; peakKiB: number; openStreams: number; perStreamKiB: number };
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

/** Runs one round and records the CPU and (for the service) RSS of the processes around it. */
export async function measuredRound(harness: Harness, scenario: Scenario, target: TargetKind, warmup: boolean): Promise<{ log: RoundLog; result: RoundResult }> {
  const { service, upstream } = harness;
  const throughput = scenario.kind === 'throughput';
  const spec: RoundSpec = {
    target: harness.targets[target],
    concurrency: scenario.concurrency,
    maxStreams: warmup ? scenario.warmupStreams : scenario.streamsPerRound,
    durationMs: throughput ? (warmup ? scenario.warmupMs : scenario.durationMs) : 0,
    expectedDeltas: scenario.script.deltas,
    detail: throughput ? 'summary' : 'chunks',
    streamTimeoutMs: STREAM_TIMEOUT_MS,
  };
  await primeSockets(harness, spec);
  const cpu = (pid: number | undefined) => (pid === undefined ? null : readCpuMs(pid));
  const before = { service: cpu(service.pid), upstream: cpu(upstream.pid), database: await harness.databaseBackends?.cpuMs() };
  const idle = target === 'service' ? readRssKiB(service.pid) : null;
  const sampler = target === 'service' ? sampleRssPeak(service.pid) : undefined;
  const result = await runRound(harness, spec);
  const peak = sampler?.stop() ?? null;
  if (service.child.exitCode !== null || service.child.signalCode !== null) {
    throw new Error(`the service exited during a ${scenario.name} round (code ${service.child.exitCode}, signal ${service.child.signalCode})`);
  }
  const after = { service: cpu(service.pid), upstream: cpu(upstream.pid), database: await harness.databaseBackends?.cpuMs() };
  const diff = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : b - a);
  const log: RoundLog = {
    target,
    warmup,
    streams: result.streams.length,
    wallMs: result.wallMs,
    cpuMs: {
      service: diff(before.service?.total, after.service?.total),
      serviceSystem: diff(before.service?.system, after.service?.system),
      upstream: diff(before.upstream?.total, after.upstream?.total),
      load: result.loadCpuMs,
      database: before.database && after.database ? cpuBetween(before.database, after.database) : null,
    },
    loadLoopDelayP99Ms: result.loadLoopDelayP99Ms,
    ...(target === 'service' ? { serviceRssKiB: { idle, peak } } : {}),
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

/** Warm-up of each target, then `rounds` alternating measured rounds; returns the figures. */
export async function runScenario(harness: Harness, scenario: Scenario, progress: (line: string) => void): Promise<ScenarioOutcome> {
  await setUpstreamScript(harness.upstream, scenario);

  const order: Array<[TargetKind, boolean]> = [['direct', true], ['service', true]];
  for (let round = 0; round < scenario.rounds; round++) order.push(['direct', false], ['service', false]);

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
    rounds,
    raw,
  };
  if (scenario.kind === 'throughput') outcome.throughput = await throughputOf(harness, scenario, of('direct'), of('service'));
  if (scenario.measureRss) outcome.rss = rssPerStream(scenario, rounds);
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
 * (highest RSS during any of the scenario's service rounds − RSS just before its first service
 * round) / streams open at once. The first round is the warm-up: the growth it causes is what
 * holding that many streams costs, whereas a later round mostly reuses memory already taken.
 */
function rssPerStream(scenario: Scenario, rounds: RoundLog[]): ScenarioOutcome['rss'] {
  const serviceRounds = rounds.filter((round) => round.serviceRssKiB);
  const idleKiB = serviceRounds[0]?.serviceRssKiB?.idle ?? null;
  const peaks = serviceRounds.map((round) => round.serviceRssKiB?.peak ?? 0);
  if (idleKiB === null || peaks.length === 0) return undefined;
  const peakKiB = Math.max(...peaks);
  return { idleKiB, peakKiB, openStreams: scenario.concurrency, perStreamKiB: (peakKiB - idleKiB) / scenario.concurrency };
}
