import { ms, table } from './markdown';
import type { ReportInput } from './report';
import { CPU_HEADER, cpuRows, errorsCell, PER_TARGET_HEADER, perTargetRows } from './report-tables';
import type { ScenarioOutcome } from './run-scenario';
import { POSTGRESQL_SCENARIOS } from './scenarios';
import type { SideBySide } from './engines-side-by-side';
import { addedTtft, checkEngineTargets, cpuPerTurnUs, sideBySideAddedP50, turnsScenario } from './targets';

const NOT_MEASURED = 'not measured';

/** One engine's column of the comparison. */
function figures(outcomes: ScenarioOutcome[]): string[] {
  const c1 = outcomes.find((outcome) => outcome.scenario.name === 'c=1');
  const turns = turnsScenario(outcomes);
  const us = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(0));
  const turnsPerSecond = turns?.throughput;
  return [
    c1 ? `${ms(addedTtft(c1, 'p50'))} ms` : NOT_MEASURED,
    c1 ? `${ms(addedTtft(c1, 'p99'))} ms` : NOT_MEASURED,
    turnsPerSecond ? `${turnsPerSecond.serviceTurnsPerSecond.toFixed(0)} (${turnsPerSecond.servicePersistedTurns} of ${turnsPerSecond.serviceCompletedTurns} stored)` : NOT_MEASURED,
    turns ? us(cpuPerTurnUs(turns, 'service')) : NOT_MEASURED,
    turns ? us(cpuPerTurnUs(turns, 'database')) : NOT_MEASURED,
    [c1, turns].map((outcome) => (outcome ? errorsCell(outcome.service) : '–')).join(' / '),
  ];
}

const FIGURES = [
  'c=1: added TTFT p50 (service − upstream directly)',
  'c=1: added TTFT p99',
  'persisted turns/s (c=50 turns)',
  'service CPU µs per persisted turn (c=50 turns)',
  'database server CPU µs per persisted turn (PostgreSQL backends of the service\'s database)',
  'service errors, c=1 / c=50 turns',
];

/** The "Engines" section: the service on SQLite beside the same service on PostgreSQL, from one run. */
export function renderEngines(input: ReportInput): string {
  const sqlite = figures(input.sqlite.outcomes);
  const postgresql = input.postgresql ? figures(input.postgresql.outcomes) : FIGURES.map(() => NOT_MEASURED);
  const parts = [
    '## Engines',
    '',
    input.postgresql
      ? `The same service, upstream and load generator on SQLite (a fresh file) and then on PostgreSQL (a database this run created on the server of \`BENCH_DATABASE_URL\` and dropped after), ` +
        `in the scenarios ${POSTGRESQL_SCENARIOS.join(', ')} on PostgreSQL. Each engine's added TTFT is against the upstream directly, measured in its own rounds. ` +
        'On SQLite the database work runs in the service\'s process; on PostgreSQL part of it runs in the server\'s backend processes, counted apart from /proc. ' +
        'The server is shared with other users of this machine and commits with the durability its settings (machine table) give, which SQLite here does not (WAL with synchronous = NORMAL: no fsync per commit).'
      : '**PostgreSQL was not measured**: `BENCH_DATABASE_URL` was not set. `BENCH_DATABASE_URL=postgres://user@host:5432/postgres npm run bench` measures it too, on a database the run creates on that server and drops after.',
    '',
    table(['figure', 'SQLite', 'PostgreSQL'], FIGURES.map((figure, index) => [figure, sqlite[index]!, postgresql[index]!])),
    '',
  ];
  if (input.sideBySide) parts.push(...renderSideBySide(input.sideBySide));
  const checks = input.postgresql ? checkEngineTargets(input.sqlite.outcomes, input.postgresql.outcomes, input.sideBySide) : [];
  parts.push(
    table(
      ['target', 'limit', 'measured', 'result'],
      checks.length > 0
        ? checks.map((check) => [check.target, check.limit, check.measured, check.pass ? 'pass' : '**FAIL**'])
        : [
            ['PostgreSQL persisted turns/s ≥ ½ SQLite\'s', '', NOT_MEASURED, '–'],
            ['c=1 added TTFT p50 on PostgreSQL within 1 ms of SQLite\'s', '', NOT_MEASURED, '–'],
          ],
    ),
    '',
  );
  if (input.postgresql) {
    const { outcomes } = input.postgresql;
    const latency = outcomes.filter((outcome) => outcome.scenario.kind === 'latency');
    parts.push(
      '### PostgreSQL rounds (ms: p50 / p99)',
      '',
      table(PER_TARGET_HEADER, latency.flatMap(perTargetRows)),
      '',
      table([...CPU_HEADER, 'database backends CPU s'], outcomes.flatMap((outcome) => cpuRows(outcome).map((row) => [...row, backendsCpu(outcome, row[1]!)]))),
      '',
    );
  }
  return parts.join('\n').trimEnd();
}

/** The PostgreSQL backends' CPU (s) during the measured rounds of the row's target (direct and floor rows: –). */
function backendsCpu(outcome: ScenarioOutcome, target: string): string {
  if (target !== 'service') return '–';
  const rounds = outcome.rounds.filter((round) => round.target === 'service' && !round.warmup);
  if (rounds.some((round) => round.cpuMs.database === null)) return 'n/a';
  return (rounds.reduce((sum, round) => sum + round.cpuMs.database!, 0) / 1000).toFixed(2);
}

/** The side-by-side c=1 pass: both engines' services up at once, rounds interleaved with the upstream's. */
function renderSideBySide(sideBySide: SideBySide): string[] {
  const added = sideBySideAddedP50(sideBySide);
  const row = (name: string, summary: SideBySide['direct'], addedP50: number | undefined) => [
    name,
    `${ms(summary.ttft?.p50 ?? Number.NaN)} / ${ms(summary.ttft?.p99 ?? Number.NaN)}`,
    addedP50 === undefined ? '–' : `${ms(addedP50)} ms`,
    String(summary.errors),
  ];
  return [
    `**c=1, both engines side by side.** The comparison above ran one engine after the other; here a service on each engine runs at once and ${sideBySide.rounds} rounds of ${sideBySide.streamsPerRound} streams per target interleave with the upstream's (direct, SQLite, PostgreSQL, in a turning order), so that the machine's drift over a run skews both engines alike. The c=1 target below is checked on these figures.`,
    '',
    table(
      ['target', 'TTFT p50 / p99 (ms)', 'added TTFT p50', 'errors'],
      [row('direct', sideBySide.direct, undefined), row('SQLite', sideBySide.sqlite, added.sqlite), row('PostgreSQL', sideBySide.postgresql, added.postgresql)],
    ),
    '',
  ];
}
