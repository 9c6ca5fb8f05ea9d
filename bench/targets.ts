import type { SideBySide } from './engines-side-by-side';
import type { ScenarioOutcome } from './run-scenario';

/** One target of issue 6, checked against the figures of this run (ratios to the floor of the same run). */
export interface TargetCheck {
  target: string;
  limit: string;
  measured: string;
  pass: boolean;
}

const ms = (value: number): string => `${value.toFixed(2)} ms`;

function scenario(outcomes: ScenarioOutcome[], name: string): ScenarioOutcome | undefined {
  return outcomes.find((outcome) => outcome.scenario.name === name);
}

/** Service (or floor) minus direct for a TTFT quantile; NaN when either side had no delta at all or was not measured. */
export function addedTtft(outcome: ScenarioOutcome, quantile: 'p50' | 'p99', target: 'service' | 'floor' = 'service'): number {
  return (outcome[target]?.ttft?.[quantile] ?? Number.NaN) - (outcome.direct.ttft?.[quantile] ?? Number.NaN);
}

export function addedGapP99(outcome: ScenarioOutcome, target: 'service' | 'floor' = 'service'): number {
  return (outcome[target]?.gap?.p99 ?? Number.NaN) - (outcome.direct.gap?.p99 ?? Number.NaN);
}

/** Stream duration p99 of the service (or floor) over direct's. */
export function stretchP99(outcome: ScenarioOutcome, target: 'service' | 'floor' = 'service'): number {
  return (outcome[target]?.duration?.p99 ?? Number.NaN) / (outcome.direct.duration?.p99 ?? Number.NaN);
}

export function checkTargets(outcomes: ScenarioOutcome[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const c1 = scenario(outcomes, 'c=1');
  if (c1) {
    const added = addedTtft(c1, 'p50');
    checks.push({ target: 'c=1: added TTFT p50', limit: '≤ 1.0 ms', measured: ms(added), pass: added <= 1.0 });
  }
  const c500 = scenario(outcomes, 'c=500');
  if (c500) {
    const added = addedTtft(c500, 'p99');
    const stretch = stretchP99(c500);
    const bunching = c500.service.bunching ?? Number.NaN;
    const floor = c500.direct.bunching ?? Number.NaN;
    checks.push(
      { target: 'c=500: added TTFT p99', limit: '≤ 50 ms', measured: ms(added), pass: added <= 50 },
      { target: 'c=500: stream duration p99 stretch', limit: '≤ 1.05', measured: stretch.toFixed(3), pass: stretch <= 1.05 },
      {
        target: 'c=500: bunching (gaps < 1 ms)',
        limit: `≤ direct (${(floor * 100).toFixed(1)} %)`,
        measured: `${(bunching * 100).toFixed(1)} %`,
        pass: bunching <= floor,
      },
      { target: 'c=500: errors', limit: '0', measured: String(c500.service.errors), pass: c500.service.errors === 0 },
    );
  }
  const c1000 = scenario(outcomes, 'c=1000');
  if (c1000) {
    const { errors, deltasReceived, deltasSent } = c1000.service;
    checks.push({
      target: 'c=1000: completes, every delta delivered',
      limit: '0 errors, received = sent',
      measured: `${errors} errors, ${deltasReceived} / ${deltasSent} deltas`,
      pass: errors === 0 && deltasReceived === deltasSent,
    });
    if (c1000.rss) {
      const perStream = c1000.rss.perStreamKiB;
      checks.push({ target: 'RSS per open stream (c=1000)', limit: '≤ 64 KiB', measured: `${perStream.toFixed(1)} KiB`, pass: perStream <= 64 });
    }
  }
  return checks;
}

/** The throughput scenario's outcome ("c=50 turns"), if the run had it. */
export function turnsScenario(outcomes: ScenarioOutcome[]): ScenarioOutcome | undefined {
  return outcomes.find((outcome) => outcome.throughput);
}

/**
 * CPU µs per persisted turn in the turns scenario, over its measured service rounds: of the
 * service's process, or of its database's PostgreSQL backends (NaN on SQLite, whose work is in
 * the service's process).
 */
export function cpuPerTurnUs(outcome: ScenarioOutcome, process: 'service' | 'database'): number {
  const rounds = outcome.rounds.filter((round) => round.target === 'service' && !round.warmup);
  const cpu = rounds.map((round) => round.cpuMs[process]);
  const turns = outcome.throughput?.servicePersistedTurns ?? 0;
  if (turns === 0 || cpu.some((ms) => ms === null)) return Number.NaN;
  return (cpu.reduce<number>((sum, ms) => sum + ms!, 0) * 1000) / turns;
}

/** Added TTFT p50 of each engine in the side-by-side pass: its p50 less the direct rounds'. */
export function sideBySideAddedP50(sideBySide: SideBySide): { sqlite: number; postgresql: number } {
  const direct = sideBySide.direct.ttft?.p50 ?? Number.NaN;
  return { sqlite: (sideBySide.sqlite.ttft?.p50 ?? Number.NaN) - direct, postgresql: (sideBySide.postgresql.ttft?.p50 ?? Number.NaN) - direct };
}

/**
 * The targets that compare the service on PostgreSQL with the same service on SQLite, in one run;
 * c=1 from the side-by-side pass when the run had one.
 */
export function checkEngineTargets(sqlite: ScenarioOutcome[], postgresql: ScenarioOutcome[], sideBySide?: SideBySide): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const turns = { sqlite: turnsScenario(sqlite)?.throughput, postgresql: turnsScenario(postgresql)?.throughput };
  if (turns.sqlite && turns.postgresql) {
    const half = turns.sqlite.serviceTurnsPerSecond / 2;
    const measured = turns.postgresql.serviceTurnsPerSecond;
    checks.push({
      target: 'PostgreSQL persisted turns/s ≥ ½ SQLite\'s',
      limit: `≥ ${half.toFixed(0)}`,
      measured: `${measured.toFixed(0)} (${((measured / turns.sqlite.serviceTurnsPerSecond) * 100).toFixed(0)} % of SQLite's)`,
      pass: measured >= half,
    });
  }
  const c1 = { sqlite: scenario(sqlite, 'c=1'), postgresql: scenario(postgresql, 'c=1') };
  if (sideBySide || (c1.sqlite && c1.postgresql)) {
    const { sqlite: onSqlite, postgresql: measured } = sideBySide
      ? sideBySideAddedP50(sideBySide)
      : { sqlite: addedTtft(c1.sqlite!, 'p50'), postgresql: addedTtft(c1.postgresql!, 'p50') };
    const difference = measured - onSqlite;
    checks.push({
      target: `c=1 added TTFT p50 on PostgreSQL within 1 ms of SQLite's${sideBySide ? ' (side by side)' : ''}`,
      limit: `≤ ${ms(onSqlite + 1)} (SQLite's ${ms(onSqlite)} + 1 ms)`,
      measured: `${ms(measured)} (${difference >= 0 ? '+' : '−'}${Math.abs(difference).toFixed(2)} ms)`,
      pass: measured <= onSqlite + 1,
    });
  }
  return checks;
}
