/**
 * Loaded into the service with `--require` by bench/scale.ts: watches the service's event loop
 * with a 1 ms timer (perf_hooks.monitorEventLoopDelay) and, on each SIGUSR2, appends what it saw
 * since the last one to the file in LOOP_DELAY_OUT (one JSON line), then starts over:
 * - maxMs: the longest delay of the timer, i.e. the longest time the loop was held by anything (a
 *   synchronous statement, a JSON.stringify, a GC pause), the 1 ms interval included;
 * - statementMs: the longest single SQLite statement run on this thread (better-sqlite3's `run`,
 *   `get` and `all`, the BEGIN and COMMIT of its transactions included): what the 10 ms bound is
 *   about; statementSql: its SQL;
 * - gcMs: the longest garbage-collection pause.
 */
const path = require('node:path');
const { monitorEventLoopDelay, PerformanceObserver, performance } = require('node:perf_hooks');
const { appendFileSync } = require('node:fs');
const { isMainThread } = require('node:worker_threads');

const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();

let statementMs = 0;
/** The SQL of the longest statement, so that the report can name it. */
let statementSql = '';
let gcMs = 0;

try {
  const Database = require(require.resolve('better-sqlite3', { paths: [path.join(__dirname, '..')] }));
  const probe = new Database(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('SELECT 1'));
  probe.close();
  for (const method of ['run', 'get', 'all']) {
    const original = statement[method];
    statement[method] = function timedStatement(...args) {
      const started = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        const took = performance.now() - started;
        if (took > statementMs) {
          statementMs = took;
          statementSql = this.source;
        }
      }
    };
  }
} catch {
  // No SQLite driver to watch: statementMs stays 0.
}

new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs = Math.max(gcMs, entry.duration);
}).observe({ entryTypes: ['gc'] });

if (isMainThread) {
  process.on('SIGUSR2', () => {
    const line = { maxMs: histogram.max / 1e6, p99Ms: histogram.percentile(99) / 1e6, samples: histogram.count, statementMs, statementSql, gcMs };
    appendFileSync(process.env.LOOP_DELAY_OUT, `${JSON.stringify(line)}\n`);
    histogram.reset();
    statementMs = 0;
    statementSql = '';
    gcMs = 0;
  });
}
