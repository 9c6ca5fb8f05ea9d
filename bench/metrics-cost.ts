import type { ChildProcess } from 'node:child_process';
import { ms, table } from './markdown';
import type { TargetSpec } from './protocol';
import { harnessFor, measuredRound, setUpstreamScript, type RoundLog } from './run-scenario';
import type { Scenario } from './scenarios';
import type { ServiceProcess } from './service-process';
import { summarize } from './stats';

/** What the metrics cost: one scenario against two services alike but for `[metrics] enabled`. */
export interface MetricsCost {
  scenario: Scenario;
  rounds: number;
  on: SideFigures;
  off: SideFigures;
  /** Scrapes of GET /metrics made during the `on` rounds (one per round), and their mean CPU cost is in `on`. */
  scrapes: number;
}

interface SideFigures {
  cpuMs: number;
  deltas: number;
  cpuPerDeltaUs: number;
  ttftP99Ms: number | null;
  errors: number;
}

/** Measured rounds of each service; their order alternates, so that neither is always first. */
const ROUNDS = 6;
/** The most the metrics may add to the CPU per delta (issue 15). */
export const METRICS_COST_LIMIT = 0.03;

/**
 * Runs `scenario` against a service with metrics on and one with them off, both up at once and
 * their rounds interleaved (on, off, off, on, …), so that the machine's drift hits both alike.
 * During each `on` round, /metrics is scraped once, as Prometheus would (more often than its
 * usual 15 s), so the figure includes serving the exposition too.
 */
export async function measureMetricsCost(
  bench: { upstream: ChildProcess; load: ChildProcess },
  scenario: Scenario,
  services: { on: ServiceProcess; off: ServiceProcess },
  directTarget: TargetSpec,
  serviceTarget: (service: ServiceProcess) => TargetSpec,
  progress: (line: string) => void,
): Promise<MetricsCost> {
  await setUpstreamScript(bench.upstream, scenario);
  const harness = (service: ServiceProcess) => harnessFor(bench, service, directTarget, serviceTarget);
  const harnesses = { on: harness(services.on), off: harness(services.off) };
  const logs: Record<'on' | 'off', RoundLog[]> = { on: [], off: [] };
  const results: Record<'on' | 'off', Awaited<ReturnType<typeof measuredRound>>['result'][]> = { on: [], off: [] };
  let scrapes = 0;
  const round = async (side: 'on' | 'off', warmup: boolean) => {
    const scrape = side === 'on' && !warmup ? scrapeDuring(services.on.port, scenario.script.deltas * scenario.script.delayMs) : undefined;
    const { log, result } = await measuredRound(harnesses[side], scenario, 'service', warmup);
    if (scrape) scrapes += (await scrape) ? 1 : 0;
    progress(`  metrics ${side}${warmup ? ' (warm-up)' : ''}: ${result.streams.length} streams, ${result.streams.filter((s) => s.errors.length > 0).length} with errors`);
    if (!warmup) {
      logs[side].push(log);
      results[side].push(result);
    }
  };
  await round('on', true);
  await round('off', true);
  for (let index = 0; index < ROUNDS; index += 1) {
    const order: Array<'on' | 'off'> = index % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
    for (const side of order) await round(side, false);
  }
  const figures = (side: 'on' | 'off'): SideFigures => {
    const summary = summarize(results[side], scenario.script.deltas);
    const cpuMs = logs[side].reduce((total, log) => total + (log.cpuMs.service ?? Number.NaN), 0);
    return { cpuMs, deltas: summary.deltasReceived, cpuPerDeltaUs: (cpuMs * 1000) / summary.deltasReceived, ttftP99Ms: summary.ttft?.p99 ?? null, errors: summary.errors };
  };
  return { scenario, rounds: ROUNDS, on: figures('on'), off: figures('off'), scrapes };
}

/** One GET /metrics in the middle of a round; true when it answered 200. */
async function scrapeDuring(port: number, roundMs: number): Promise<boolean> {
  await new Promise((resolve) => setTimeout(resolve, roundMs / 2));
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  await response.text();
  return response.status === 200;
}

/** The report's section: both services' CPU per delta, and the check against the limit. */
export function renderMetricsCost(cost: MetricsCost): string {
  const { on, off } = cost;
  const added = on.cpuPerDeltaUs / off.cpuPerDeltaUs - 1;
  const row = (name: string, side: SideFigures) => [name, (side.cpuMs / 1000).toFixed(2), String(side.deltas), side.cpuPerDeltaUs.toFixed(1), `${ms(side.ttftP99Ms)} ms`, String(side.errors)];
  return [
    '## Metrics cost',
    '',
    `${cost.scenario.name} (${cost.scenario.description}) against two services, alike but for \`[metrics] enabled\`, both up at once, ` +
      `${cost.rounds} measured rounds each, interleaved (on/off order alternating) after a warm-up of each. ` +
      `The service with metrics was scraped once in the middle of each of its rounds (${cost.scrapes} scrapes answered), far more often than Prometheus' usual 15 s.`,
    '',
    table(['metrics', 'service CPU s', 'deltas', 'CPU µs per delta', 'TTFT p99', 'streams with errors'], [row('on', on), row('off', off)]),
    '',
    table(
      ['target', 'limit', 'measured', 'result'],
      [['metrics: added CPU per delta', `≤ ${(METRICS_COST_LIMIT * 100).toFixed(0)} %`, `${(added * 100).toFixed(1)} %`, added <= METRICS_COST_LIMIT ? 'pass' : '**FAIL**']],
    ),
    '',
  ].join('\n');
}
