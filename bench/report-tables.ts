import { ms } from './markdown';
import type { TargetKind } from './protocol';
import type { ScenarioOutcome } from './run-scenario';
import type { Quantiles, TargetSummary } from './stats';

/** Rows of the report's per-scenario tables, for the SQLite run and for the PostgreSQL one alike. */

export const pair = (q: Quantiles | null): string => (q ? `${ms(q.p50)} / ${ms(q.p99)}` : 'n/a');
const percent = (share: number | null): string => (share === null ? 'n/a' : `${(share * 100).toFixed(1)} %`);
const seconds = (msTotal: number | null): string => (msTotal === null ? 'n/a' : (msTotal / 1000).toFixed(2));

export function errorsCell(summary: TargetSummary): string {
  if (summary.errors === 0) return '0';
  const kinds = Object.entries(summary.errorKinds).map(([kind, count]) => `${kind} ${count}`);
  return `${summary.errors} (${kinds.join(', ')})`;
}

/** The targets a scenario measured, in the order of its rounds: the floor only when it was measured. */
export function measuredTargets(outcome: ScenarioOutcome): TargetKind[] {
  return outcome.floor ? ['direct', 'service', 'floor'] : ['direct', 'service'];
}

export function perTargetRows(outcome: ScenarioOutcome): string[][] {
  return measuredTargets(outcome).map((target) => {
    const s = outcome[target]!;
    return [
      outcome.scenario.name,
      target,
      String(s.streams),
      pair(s.ttft),
      pair(s.gap),
      percent(s.bunching),
      pair(s.duration),
      `${s.deltasReceived} / ${s.deltasSent}`,
      errorsCell(s),
    ];
  });
}

export const PER_TARGET_HEADER = ['scenario', 'target', 'streams', 'TTFT', 'inter-delta gap', 'gaps < 1 ms', 'stream duration', 'deltas received / sent', 'errors'];

export const CPU_HEADER = [
  'scenario',
  'target',
  'wall s',
  'service CPU s',
  'of which in the kernel',
  'floor CPU s',
  'upstream CPU s',
  'load generator CPU s',
  'CPU µs per delta (service rows: the service; floor rows: the floor)',
  'load generator loop delay p99 ms',
];

/**
 * CPU µs per delta delivered of the process that `target` names (the service's or the floor's),
 * over the scenario's measured rounds of that target; NaN when not measured.
 */
export function cpuPerDeltaUs(outcome: ScenarioOutcome, target: 'service' | 'floor'): number {
  const rounds = outcome.rounds.filter((round) => round.target === target && !round.warmup);
  const cpu = rounds.map((round) => round.cpuMs[target]);
  const deltas = outcome[target]?.deltasReceived ?? 0;
  if (rounds.length === 0 || deltas === 0 || cpu.some((ms) => ms === null)) return Number.NaN;
  return (cpu.reduce<number>((sum, ms) => sum + ms!, 0) * 1000) / deltas;
}

export function cpuRows(outcome: ScenarioOutcome): string[][] {
  return measuredTargets(outcome).map((target) => {
    const rounds = outcome.rounds.filter((round) => round.target === target && !round.warmup);
    const sum = (pick: (round: (typeof rounds)[number]) => number | null): number | null =>
      rounds.some((round) => pick(round) === null) ? null : rounds.reduce((total, round) => total + (pick(round) ?? 0), 0);
    const perDelta = target === 'direct' ? Number.NaN : cpuPerDeltaUs(outcome, target);
    return [
      outcome.scenario.name,
      target,
      seconds(sum((round) => round.wallMs)),
      seconds(sum((round) => round.cpuMs.service)),
      seconds(sum((round) => round.cpuMs.serviceSystem)),
      seconds(sum((round) => round.cpuMs.floor)),
      seconds(sum((round) => round.cpuMs.upstream)),
      seconds(sum((round) => round.cpuMs.load)),
      Number.isNaN(perDelta) ? '–' : perDelta.toFixed(1),
      ms(Math.max(...rounds.map((round) => round.loadLoopDelayP99Ms))),
    ];
  });
}
