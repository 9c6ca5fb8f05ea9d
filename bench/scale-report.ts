import { machineRows, type Machine } from './machine';
import { isoSeconds, ms, table } from './markdown';
import type { PostgresqlSettings } from './postgresql-server';
import { median, type PhaseResult } from './scale-phases';

export type EngineName = 'SQLite' | 'PostgreSQL';

/** One seeded database, served and measured. */
export interface DatabaseRun {
  engine: EngineName;
  size: 'empty' | 'large';
  /** Messages stored when the service started (each DELETE run adds, then removes, one more big chat). */
  messages: number;
  seedSeconds: number;
  phases: PhaseResult[];
}

export interface ScaleReportInput {
  date: Date;
  machine: Machine;
  postgresqlSettings?: PostgresqlSettings;
  runSeconds: number;
  runs: DatabaseRun[];
  settings: { runs: number; warmup: number; fillerChats: number; pairs: number; pagedChats: number; bigChatMessages: number };
  /** bench/scale-analysis.md, written by hand: what in the code the figures point at. */
  analysis?: string;
}

/** Limits of the issue: at 1 M messages, each request within 2× its empty-database time; no loop block over 10 ms. */
const MAX_RATIO = 2;
const MAX_BLOCK_MS = 10;

interface Comparison {
  request: string;
  empty: PhaseResult;
  large: PhaseResult;
  ratio: number;
}

function percentile90(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)]!;
}

const figure = (phase: PhaseResult) => `${ms(median(phase.runsMs))} (${ms(percentile90(phase.runsMs))})`;

function compare(empty: DatabaseRun, large: DatabaseRun): Comparison[] {
  return large.phases.map((phase, index) => {
    const base = empty.phases[index]!;
    // The deeper page's depth differs (the empty database has fewer chats): the request is the same.
    return { request: phase.request, empty: base, large: phase, ratio: median(phase.runsMs) / median(base.runsMs) };
  });
}

/**
 * Requests whose loop figures are shared (a DELETE and its purge) are shown once. The bound is on
 * statements: SQLite's run on the loop and are timed one by one; PostgreSQL's run in the server,
 * the driver is asynchronous, so none holds the loop. The loop's longest block and GC pause are
 * shown beside them: what else held it.
 */
function loopRows(engine: EngineName, comparisons: Comparison[]): string[][] {
  return comparisons
    .filter((comparison) => !comparison.request.startsWith('…'))
    .map(({ request, empty, large }) => {
      const name = request.startsWith('DELETE') ? `${request.replace(': response', '')} and its purge` : request;
      const statement = engine === 'SQLite' ? large.statementMs : 0;
      return [
        name,
        engine === 'SQLite' ? `${ms(empty.statementMs)} / ${ms(large.statementMs)}` : 'none on the loop',
        `${ms(empty.loopBlockMs)} / ${ms(large.loopBlockMs)}`,
        `${ms(empty.gcMs)} / ${ms(large.gcMs)}`,
        statement === null ? 'n/a' : statement <= MAX_BLOCK_MS ? 'pass' : '**FAIL**',
      ];
    });
}

/** The failures in words: which request, by how much. */
function failures(engine: EngineName, comparisons: Comparison[]): string[] {
  const lines: string[] = [];
  for (const { request, empty, large, ratio } of comparisons) {
    if (ratio > MAX_RATIO) {
      lines.push(`- ${engine}: ${request}: ${ms(median(large.runsMs))} ms at 1 M messages against ${ms(median(empty.runsMs))} ms empty, ${ratio.toFixed(2)}× (limit ${MAX_RATIO}×).`);
    }
    if (engine === 'SQLite' && !request.startsWith('…') && large.statementMs !== null && large.statementMs > MAX_BLOCK_MS) {
      lines.push(`- ${engine}: during ${request}: a statement held the event loop ${ms(large.statementMs)} ms at 1 M messages (limit ${MAX_BLOCK_MS} ms, ${ms(large.statementMs - MAX_BLOCK_MS)} ms over): \`${large.statementSql.replace(/\s+/g, ' ').trim()}\`.`);
    }
  }
  return lines;
}

function engineSection(engine: EngineName, runs: DatabaseRun[], settings: ScaleReportInput['settings']): { text: string[]; failed: string[] } {
  const empty = runs.find((run) => run.engine === engine && run.size === 'empty');
  const large = runs.find((run) => run.engine === engine && run.size === 'large');
  if (!empty || !large) {
    return { text: [`## ${engine}`, '', `**Not measured**: \`BENCH_DATABASE_URL\` was not set (\`BENCH_DATABASE_URL=postgres://user@host:5432/postgres npm run bench:scale\` measures it).`, ''], failed: [] };
  }
  const comparisons = compare(empty, large);
  const text = [
    `## ${engine}`,
    '',
    `Empty database: ${empty.messages.toLocaleString('en')} messages (seeded in ${empty.seedSeconds.toFixed(1)} s); ` +
      `large: ${large.messages.toLocaleString('en')} messages in ${(settings.fillerChats + settings.pagedChats + 1).toLocaleString('en')} chats (seeded in ${large.seedSeconds.toFixed(1)} s).`,
    '',
    table(
      ['request (ms: median of ' + settings.runs + ' (p90))', 'empty DB', '1 M messages', 'ratio', `pass (≤ ${MAX_RATIO}×)`],
      comparisons.map(({ request, empty: base, large: big, ratio }) => [request, figure(base), figure(big), `${ratio.toFixed(2)}×`, ratio <= MAX_RATIO ? 'pass' : '**FAIL**']),
    ),
    '',
    table(
      [
        'during (ms, empty DB / 1 M messages)',
        'longest statement on the event loop',
        'longest event-loop block (anything)',
        'longest GC pause',
        `pass (statement ≤ ${MAX_BLOCK_MS} ms)`,
      ],
      loopRows(engine, comparisons),
    ),
    '',
  ];
  return { text, failed: failures(engine, comparisons) };
}

export function renderScaleReport(input: ScaleReportInput): string {
  const { machine, settings } = input;
  const settingsRow = input.postgresqlSettings
    ? `${input.postgresqlSettings.version}; synchronous_commit = ${input.postgresqlSettings.synchronousCommit}, fsync = ${input.postgresqlSettings.fsync} (read with SHOW; a shared server, left as it is)`
    : 'not measured (BENCH_DATABASE_URL not set)';
  const sections = (['SQLite', 'PostgreSQL'] as const).map((engine) => engineSection(engine, input.runs, settings));
  const failed = sections.flatMap((section) => section.failed);
  const parts = [
    '# Large-database benchmark',
    '',
    `Generated by \`npm run bench:scale\` on ${isoSeconds(input.date)}; the run took ${input.runSeconds.toFixed(0)} s after the build.`,
    '',
    table(['machine', ''], [
      ...machineRows(machine),
      ['PostgreSQL', settingsRow],
    ]),
    '',
    '## Method',
    '',
    `Two databases per engine, seeded straight with SQL as rows the service writes, all chats owned by one API key (auth on). ` +
      `"Empty" holds only the chats the requests use: ${settings.pagedChats} chats of ${settings.pairs} pairs (the pages listed, the chats turned on) and one chat of ${settings.bigChatMessages.toLocaleString('en')} messages. ` +
      `"1 M messages" holds the same plus ${settings.fillerChats.toLocaleString('en')} older chats of ${settings.pairs} pairs. ` +
      'PostgreSQL databases get `VACUUM ANALYZE` after the bulk load, as autovacuum would soon do; SQLite files are left as the service leaves them. ' +
      'The production build (`node dist/main.js`, default settings but the per-key limits) serves each database in turn, with the paced fake upstream replying 2 deltas at once. ' +
      `Requests go one at a time on a keep-alive socket; each is run ${settings.warmup} times unmeasured, then ${settings.runs} times (DELETE: 1 + 5 times). ` +
      'A turn is timed to its first text delta (time to first token), a list page and a DELETE to the end of the response. ' +
      'Each DELETE removes a 20,000-message chat seeded just before it; its purge is timed until a count of its messages (polled every 10 ms) reaches 0. ' +
      'A list page after a cursor is reached by following the pages from the first. ' +
      'The hook `bench/loop-delay-hook.cjs`, loaded into the service with `--require`, times every SQLite statement run on the event loop (better-sqlite3\'s `run`, `get` and `all`, a transaction\'s BEGIN and COMMIT included; WAL checkpoints run on a thread of their own) and records the longest, with the longest 1 ms timer delay during the measured runs less the 1 ms (`monitorEventLoopDelay`: anything that held the loop, a GC pause included) and the longest GC pause.',
    '',
    '## Targets',
    '',
    `Required on both engines: at 1 M messages each request within ${MAX_RATIO}× its empty-database time, and no statement holding the event loop for more than ${MAX_BLOCK_MS} ms.`,
    '',
    failed.length === 0 ? 'Every measured target passes.' : ['Failing:', '', ...failed].join('\n'),
    '',
    ...sections.flatMap((section) => section.text),
  ];
  if (input.analysis) parts.push(input.analysis.trim(), '');
  return parts.join('\n');
}
