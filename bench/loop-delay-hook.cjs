/**
 * Loaded into the service with `--require` by bench/scale.ts: watches the service's event loop
 * with a 1 ms timer (perf_hooks.monitorEventLoopDelay) and, on each SIGUSR2, appends what it saw
 * since the last one to the file in LOOP_DELAY_OUT (one JSON line), then starts over. The longest
 * delay is the longest time the loop was held: a synchronous statement, a JSON.stringify, a GC
 * pause. It includes the 1 ms sampling interval.
 */
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { appendFileSync } = require('node:fs');

const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();

process.on('SIGUSR2', () => {
  const line = { maxMs: histogram.max / 1e6, p99Ms: histogram.percentile(99) / 1e6, samples: histogram.count };
  appendFileSync(process.env.LOOP_DELAY_OUT, `${JSON.stringify(line)}\n`);
  histogram.reset();
});
