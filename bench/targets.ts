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

/** Service minus direct for a TTFT quantile; NaN when either side had no delta at all. */
export function addedTtft(outcome: ScenarioOutcome, quantile: 'p50' | 'p99'): number {
  return (outcome.service.ttft?.[quantile] ?? Number.NaN) - (outcome.direct.ttft?.[quantile] ?? Number.NaN);
}

export function addedGapP99(outcome: ScenarioOutcome): number {
  return (outcome.service.gap?.p99 ?? Number.NaN) - (outcome.direct.gap?.p99 ?? Number.NaN);
}

export function stretchP99(outcome: ScenarioOutcome): number {
  return (outcome.service.duration?.p99 ?? Number.NaN) / (outcome.direct.duration?.p99 ?? Number.NaN);
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
