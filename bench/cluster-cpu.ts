import type { ChildProcess } from 'node:child_process';
import type { DatabaseBackends } from './postgresql-server';
import { readCpuMs } from './proc-stats';
import type { RoundResult, TargetSpec } from './protocol';
import { readRedisStats, type RedisStats } from './redis-server';
import { measuredRound, setUpstreamScript, type Harness } from './run-scenario';
import type { Scenario } from './scenarios';
import type { ServiceProcess } from './service-process';
import { summarize, type TargetSummary } from './stats';

/**
 * Target 1 of the multi-instance issue: what multi-instance mode costs the instance generating a
 * reply that nobody follows from another instance. The same load runs against a single-instance
 * service (S1) and a multi-instance one (M1, with an idle peer M2 on the same database and Redis),
 * both up at once, their rounds interleaved: this VM's speed drifts over a run, and a drift then
 * skews both alike.
 */

export type Side = 'S1' | 'M1';

export interface CpuSide {
  service: ServiceProcess;
  /** The server processes of the service's database (M1's also serve the idle M2). */
  databaseBackends: DatabaseBackends;
}

export interface CpuRound {
  side: Side;
  warmup: boolean;
  streams: number;
  deltasReceived: number;
  wallMs: number;
  serviceCpuMs: number | null;
  databaseCpuMs: number | null;
  /** The idle peer M2 during the round: it should do nothing per delta of M1's. */
  idlePeerCpuMs: number | null;
  /** Redis during the round (with its socket priming and settle pause); the server may be shared. */
  redis: { cpuMs: number; commands: number; calls: Record<string, number> };
}

export interface CpuLevel {
  scenario: Scenario;
  rounds: CpuRound[];
  /** Measured rounds only (warm-ups left out). */
  summaries: Record<Side, TargetSummary>;
}

/** The order of the sides turns every round, so that neither is always first. */
const ORDERS: Side[][] = [
  ['S1', 'M1'],
  ['M1', 'S1'],
];

function redisBetween(before: RedisStats, after: RedisStats): CpuRound['redis'] {
  const calls: Record<string, number> = {};
  for (const [name, count] of Object.entries(after.calls)) {
    const made = count - (before.calls[name] ?? 0);
    if (made > 0) calls[name] = made;
  }
  return { cpuMs: after.cpuMs - before.cpuMs, commands: after.commands - before.commands, calls };
}

/**
 * For each scenario: a warm-up round of each side, then `scenario.rounds` measured rounds of each,
 * interleaved. The service's CPU per round comes from /proc (measuredRound), as in `npm run bench`.
 */
export async function measureCpuPerDelta(
  bench: { upstream: ChildProcess; load: ChildProcess },
  scenarios: Scenario[],
  sides: Record<Side, CpuSide>,
  options: { idlePeer: ServiceProcess; redisUrl: string; target: (service: ServiceProcess) => TargetSpec; progress: (line: string) => void },
): Promise<CpuLevel[]> {
  const harness = (side: Side): Harness => {
    const { service, databaseBackends } = sides[side];
    const target = options.target(service);
    // Only the service is measured here: its targets' `direct` is never used.
    return { upstream: bench.upstream, load: bench.load, service, targets: { direct: target, service: target }, databaseBackends };
  };
  const harnesses: Record<Side, Harness> = { S1: harness('S1'), M1: harness('M1') };
  const levels: CpuLevel[] = [];
  for (const scenario of scenarios) {
    await setUpstreamScript(bench.upstream, scenario);
    const rounds: CpuRound[] = [];
    const raw: Record<Side, RoundResult[]> = { S1: [], M1: [] };
    const round = async (side: Side, warmup: boolean): Promise<void> => {
      const peerBefore = readCpuMs(options.idlePeer.pid)?.total;
      const redisBefore = await readRedisStats(options.redisUrl);
      const { log, result } = await measuredRound(harnesses[side], scenario, 'service', warmup);
      const redisAfter = await readRedisStats(options.redisUrl);
      const peerAfter = readCpuMs(options.idlePeer.pid)?.total;
      const summary = summarize([result], scenario.script.deltas);
      rounds.push({
        side,
        warmup,
        streams: log.streams,
        deltasReceived: summary.deltasReceived,
        wallMs: log.wallMs,
        serviceCpuMs: log.cpuMs.service,
        databaseCpuMs: log.cpuMs.database,
        idlePeerCpuMs: peerBefore === undefined || peerAfter === undefined ? null : peerAfter - peerBefore,
        redis: redisBetween(redisBefore, redisAfter),
      });
      if (!warmup) raw[side].push(result);
      const perDelta = log.cpuMs.service === null ? 'n/a' : ((log.cpuMs.service * 1000) / Math.max(1, summary.deltasReceived)).toFixed(1);
      options.progress(
        `  ${scenario.name} ${side}${warmup ? ' (warm-up)' : ''}: ${log.streams} streams in ${(log.wallMs / 1000).toFixed(2)} s, ` +
          `${summary.errors} with errors, service CPU ${perDelta} µs/delta`,
      );
    };
    for (const side of ORDERS[0]!) await round(side, true);
    for (let index = 0; index < scenario.rounds; index++) {
      for (const side of ORDERS[index % ORDERS.length]!) await round(side, false);
    }
    levels.push({ scenario, rounds, summaries: { S1: summarize(raw.S1, scenario.script.deltas), M1: summarize(raw.M1, scenario.script.deltas) } });
  }
  return levels;
}

/** Service CPU µs per delta received over the measured rounds of `side`; null when a reading is missing. */
export function cpuPerDelta(level: CpuLevel, side: Side, pick: (round: CpuRound) => number | null = (round) => round.serviceCpuMs): number | null {
  const rounds = level.rounds.filter((round) => round.side === side && !round.warmup);
  if (rounds.some((round) => pick(round) === null)) return null;
  const cpuMs = rounds.reduce((sum, round) => sum + pick(round)!, 0);
  const deltas = rounds.reduce((sum, round) => sum + round.deltasReceived, 0);
  return deltas === 0 ? null : (cpuMs * 1000) / deltas;
}

/**
 * M1/S1 of each pair of measured rounds (the n-th of each side): how much the ratio moves from
 * round to round. Their median is the figure the target is judged on.
 */
export function pairRatios(level: CpuLevel): number[] {
  const perDelta = (side: Side) =>
    level.rounds
      .filter((round) => round.side === side && !round.warmup)
      .map((round) => (round.serviceCpuMs === null || round.deltasReceived === 0 ? null : round.serviceCpuMs / round.deltasReceived));
  const s1 = perDelta('S1');
  const m1 = perDelta('M1');
  const ratios: number[] = [];
  for (let index = 0; index < Math.min(s1.length, m1.length); index++) {
    const [single, multi] = [s1[index], m1[index]];
    if (single != null && multi != null && single > 0) ratios.push(multi / single);
  }
  return ratios;
}
