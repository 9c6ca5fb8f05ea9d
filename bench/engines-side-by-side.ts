import type { ChildProcess } from 'node:child_process';
import type { TargetKind, TargetSpec } from './protocol';
import { harnessFor, measuredRound, setUpstreamScript } from './run-scenario';
import type { Scenario } from './scenarios';
import type { ServiceProcess } from './service-process';
import { summarize, type TargetSummary } from './stats';

/** c=1 measured with both engines' services running at once, their rounds interleaved. */
export interface SideBySide {
  rounds: number;
  streamsPerRound: number;
  direct: TargetSummary;
  sqlite: TargetSummary;
  postgresql: TargetSummary;
}

type Side = 'direct' | 'sqlite' | 'postgresql';

/** Rounds of each target; their order turns every round, so that none is always first or last. */
const ROUNDS = 6;
const ORDERS: Side[][] = [
  ['direct', 'sqlite', 'postgresql'],
  ['sqlite', 'postgresql', 'direct'],
  ['postgresql', 'direct', 'sqlite'],
];

/**
 * The engines' c=1 comparison. Measured one engine after the other, the difference between the
 * two moved by more than a millisecond from run to run on a shared VM whose speed drifts over the
 * minutes of a run; with both services up and their rounds interleaved with the upstream's, a
 * drift skews both engines alike. Each engine's added TTFT is its p50 less the direct rounds' p50.
 */
export async function measureEnginesSideBySide(
  bench: { upstream: ChildProcess; load: ChildProcess },
  scenario: Scenario,
  services: { sqlite: ServiceProcess; postgresql: ServiceProcess },
  directTarget: TargetSpec,
  serviceTarget: (service: ServiceProcess) => TargetSpec,
  progress: (line: string) => void,
): Promise<SideBySide> {
  await setUpstreamScript(bench.upstream, scenario);
  const harness = (service: ServiceProcess) => harnessFor(bench, service, directTarget, serviceTarget);
  const harnesses = { sqlite: harness(services.sqlite), postgresql: harness(services.postgresql) };
  const round = async (side: Side, warmup: boolean) => {
    const target: TargetKind = side === 'direct' ? 'direct' : 'service';
    const { result } = await measuredRound(harnesses[side === 'direct' ? 'sqlite' : side], scenario, target, warmup);
    progress(`  side by side ${side}${warmup ? ' (warm-up)' : ''}: ${result.streams.length} streams, ${result.streams.filter((s) => s.errors.length > 0).length} with errors`);
    return result;
  };
  for (const side of ORDERS[0]!) await round(side, true);
  const results: Record<Side, Awaited<ReturnType<typeof round>>[]> = { direct: [], sqlite: [], postgresql: [] };
  for (let index = 0; index < ROUNDS; index++) {
    for (const side of ORDERS[index % ORDERS.length]!) results[side].push(await round(side, false));
  }
  const { deltas } = scenario.script;
  return {
    rounds: ROUNDS,
    streamsPerRound: scenario.streamsPerRound,
    direct: summarize(results.direct, deltas),
    sqlite: summarize(results.sqlite, deltas),
    postgresql: summarize(results.postgresql, deltas),
  };
}
