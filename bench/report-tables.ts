import { ms } from './markdown';
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

export function perTargetRows(outcome: ScenarioOutcome): string[][] {
  return (['direct', 'service'] as const).map((target) => {
    const s = outcome[target];
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
  'upstream CPU s',
  'load generator CPU s',
  'service CPU µs per delta',
  'load generator loop delay p99 ms',
];

export function cpuRows(outcome: ScenarioOutcome): string[][] {
  return (['direct', 'service'] as const).map((target) => {
    const rounds = outcome.rounds.filter((round) => round.target === target && !round.warmup);
    const sum = (pick: (round: (typeof rounds)[number]) => number | null): number | null =>
      rounds.some((round) => pick(round) === null) ? null : rounds.reduce((total, round) => total + (pick(round) ?? 0), 0);
    const serviceCpu = sum((round) => round.cpuMs.service);
    const deltas = outcome[target].deltasReceived;
    const perDelta = target === 'service' && serviceCpu !== null && deltas > 0 ? ((serviceCpu * 1000) / deltas).toFixed(1) : '–';
    return [
      outcome.scenario.name,
      target,
      seconds(sum((round) => round.wallMs)),
      seconds(serviceCpu),
      seconds(sum((round) => round.cpuMs.serviceSystem)),
      seconds(sum((round) => round.cpuMs.upstream)),
      seconds(sum((round) => round.cpuMs.load)),
      perDelta,
      ms(Math.max(...rounds.map((round) => round.loadLoopDelayP99Ms))),
    ];
  });
}
