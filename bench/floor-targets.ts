import { ms, table } from './markdown';
import type { EngineRun } from './report';
import { cpuPerDeltaUs } from './report-tables';
import type { ScenarioOutcome } from './run-scenario';
import type { TargetSummary } from './stats';
import { addedTtft, stretchP99 } from './targets';

/** One target of issue 16: the service's figure against the floor's, both from the same run. */
export interface FloorCheck {
  target: string;
  limit: string;
  floor: string;
  service: string;
  /** The ratio or difference the limit is on. */
  comparison: string;
  pass: boolean;
}

/** Idle RSS of the service's process after start, before any request (an absolute limit). */
const IDLE_RSS_LIMIT_MIB = 100;

const us = (value: number): string => `${value.toFixed(1)} µs`;
const msCell = (value: number): string => `${ms(value)} ms`;
const times = (value: number): string => `${value.toFixed(2)}×`;
const percent = (share: number): string => `${(share * 100).toFixed(1)} %`;
const mib = (kib: number | null): string => (kib === null ? 'n/a' : `${(kib / 1024).toFixed(1)} MiB`);

function scenario(outcomes: ScenarioOutcome[], name: string): ScenarioOutcome | undefined {
  return outcomes.find((outcome) => outcome.scenario.name === name && outcome.floor);
}

/** `service ≤ factor × floor`, shown as a ratio. */
function ratioCheck(target: string, factor: number, floor: number, service: number, format: (value: number) => string): FloorCheck {
  return { target, limit: `≤ ${factor} × floor`, floor: format(floor), service: format(service), comparison: times(service / floor), pass: service <= factor * floor };
}

/** `service ≤ floor + margin`, shown as a difference; `format` writes the margin and the difference (no sign). */
function marginCheck(target: string, margin: number, format: (value: number) => string, floor: string, service: string, difference: number): FloorCheck {
  const signed = `${difference >= 0 ? '+' : '−'}${format(Math.abs(difference))}`;
  return { target, limit: `≤ floor + ${format(margin)}`, floor, service, comparison: signed, pass: difference <= margin };
}

function deliveredCheck(name: string, floor: TargetSummary, service: TargetSummary): FloorCheck {
  const cell = (summary: TargetSummary) => `${summary.errors} errors, ${summary.deltasReceived} / ${summary.deltasSent} deltas`;
  return {
    target: `${name}: no errors, every delta delivered`,
    limit: '0 errors, received = sent',
    floor: cell(floor),
    service: cell(service),
    comparison: '–',
    pass: service.errors === 0 && service.deltasReceived === service.deltasSent,
  };
}

/**
 * The targets of issue 16 on one engine's run: the service against the floor re-framer measured
 * in the same scenarios. Only what the run measured is checked; `c1MarginMs` is the c=1 added
 * TTFT margin (0.5 ms on SQLite, 1.0 ms on PostgreSQL).
 */
export function checkFloorTargets(run: EngineRun, c1MarginMs: number): FloorCheck[] {
  const { outcomes } = run;
  const checks: FloorCheck[] = [];
  const c500 = scenario(outcomes, 'c=500');
  if (c500) {
    checks.push(ratioCheck('c=500: CPU per delta', 1.3, cpuPerDeltaUs(c500, 'floor'), cpuPerDeltaUs(c500, 'service'), us));
  }
  const c1 = scenario(outcomes, 'c=1');
  if (c1) {
    const floor = addedTtft(c1, 'p50', 'floor');
    const service = addedTtft(c1, 'p50');
    checks.push(marginCheck('c=1: added TTFT p50 (vs direct)', c1MarginMs, (value) => `${value.toFixed(2)} ms`, msCell(floor), msCell(service), service - floor));
  }
  if (c500) {
    checks.push(ratioCheck('c=500: added TTFT p99 (vs direct)', 2, addedTtft(c500, 'p99', 'floor'), addedTtft(c500, 'p99'), msCell));
    const floor = stretchP99(c500, 'floor');
    const service = stretchP99(c500);
    checks.push(marginCheck('c=500: stream duration p99 stretch over direct', 0.05, (value) => value.toFixed(3), floor.toFixed(3), service.toFixed(3), service - floor));
  }
  const c1000 = scenario(outcomes, 'c=1000');
  if (c1000) {
    const floor = c1000.floor!.bunching ?? Number.NaN;
    const service = c1000.service.bunching ?? Number.NaN;
    checks.push(marginCheck('c=1000: bunched deltas (gaps < 1 ms)', 5, (value) => `${value.toFixed(1)} points`, percent(floor), percent(service), (service - floor) * 100));
    if (c1000.rss && c1000.floorRss) {
      checks.push(ratioCheck('c=1000: RSS per open stream', 1.5, c1000.floorRss.perStreamKiB, c1000.rss.perStreamKiB, (kib) => `${kib.toFixed(1)} KiB`));
    }
  }
  const idle = run.serviceRssAtStartKiB;
  checks.push({
    target: 'idle RSS after start, before any request',
    limit: `service ≤ ${IDLE_RSS_LIMIT_MIB} MiB`,
    floor: mib(run.floorRssAtStartKiB),
    service: mib(idle),
    comparison: run.floorRssAtStartKiB && idle !== null ? times(idle / run.floorRssAtStartKiB) : '–',
    pass: idle !== null && idle <= IDLE_RSS_LIMIT_MIB * 1024,
  });
  for (const outcome of [c500, c1000]) if (outcome) checks.push(deliveredCheck(outcome.scenario.name, outcome.floor!, outcome.service));
  return checks;
}

const HEADER = ['target', 'limit', 'floor', 'service', 'ratio or difference', 'result'];

function checksTable(checks: FloorCheck[]): string {
  return table(HEADER, checks.map((check) => [check.target, check.limit, check.floor, check.service, check.comparison, check.pass ? 'PASS' : '**FAIL**']));
}

/** The "Targets against the floor (issue 16)" section: SQLite's run, then PostgreSQL's where measured. */
export function renderFloorTargets(sqlite: EngineRun, postgresql: EngineRun | undefined): string {
  const parts = [
    '## Targets against the floor (issue 16)',
    '',
    'The floor is `bench/floor-reframer.ts`: a `node:http` server that requests the paced upstream over a keep-alive agent and, per upstream chunk, ' +
      'splits the SSE lines, `JSON.parse`s each data line once and writes the UI message stream frames in one `write` (no database, auth, limits, resume or logs): ' +
      'what any Node implementation of this job must spend at least. It runs in its own process (a fresh one per engine), in rounds alternating with the upstream\'s and the service\'s; ' +
      'CPU (user + system, `/proc/<pid>/stat`) per delta delivered and RSS are read for it as for the service. ' +
      'Added TTFT and stretch are each target\'s figure against the upstream directly in the same scenario.',
    '',
    '### The service on SQLite',
    '',
    checksTable(checkFloorTargets(sqlite, 0.5)),
    '',
  ];
  if (postgresql) {
    const measured = postgresql.outcomes.filter((outcome) => outcome.floor).map((outcome) => outcome.scenario.name);
    parts.push(
      '### The service on PostgreSQL',
      '',
      `Only what the PostgreSQL part runs with the floor (${measured.join(', ') || 'no scenario'}) is checked here; the c=1 margin on PostgreSQL is 1 ms.`,
      '',
      checksTable(checkFloorTargets(postgresql, 1.0)),
      '',
    );
  }
  return parts.join('\n');
}
