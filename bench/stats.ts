import type { RoundResult } from './protocol';

/**
 * Turns the load generator's raw records into the figures the issue asks for. All times in ms.
 *
 * - TTFT: from the request being sent to the arrival of the first chunk carrying a delta.
 * - Gap: between the arrival of consecutive deltas. Deltas that arrive in the same chunk count
 *   as gaps of 0 (bunching): a client can only render them at once.
 * - Duration: from the request being sent to the end of the response.
 */

export interface Quantiles {
  p50: number;
  p99: number;
}

export interface TargetSummary {
  streams: number;
  ttft: Quantiles | null;
  gap: Quantiles | null;
  /** Share of gaps under 1 ms, 0..1. */
  bunching: number | null;
  duration: Quantiles | null;
  deltasReceived: number;
  deltasSent: number;
  /** Streams with at least one error. */
  errors: number;
  errorKinds: Record<string, number>;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

function quantiles(values: number[]): Quantiles | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort(); // typed-array sort is numeric and fast
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** One target's figures over the given (measured) rounds; `expectedDeltas` is what the upstream sent per stream. */
export function summarize(rounds: RoundResult[], expectedDeltas: number): TargetSummary {
  const ttft: number[] = [];
  const gaps: number[] = [];
  const durations: number[] = [];
  const errorKinds: Record<string, number> = {};
  let streams = 0;
  let deltasReceived = 0;
  let errors = 0;
  let under1ms = 0;

  for (const round of rounds) {
    for (const stream of round.streams) {
      streams++;
      deltasReceived += stream.deltas;
      if (stream.errors.length > 0) errors++;
      for (const kind of stream.errors) errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      if (stream.firstDeltaAt !== null) ttft.push(stream.firstDeltaAt - stream.sentAt);
      if (stream.endAt !== null) durations.push(stream.endAt - stream.sentAt);
      const at = stream.chunkAt;
      const counts = stream.chunkDeltas;
      if (!at || !counts) continue;
      let previous: number | null = null;
      for (let i = 0; i < at.length; i++) {
        const n = counts[i]!;
        if (n === 0) continue;
        if (previous !== null) {
          const gap = at[i]! - previous;
          gaps.push(gap);
          if (gap < 1) under1ms++;
        }
        for (let k = 1; k < n; k++) gaps.push(0);
        under1ms += n - 1;
        previous = at[i]!;
      }
    }
  }
  return {
    streams,
    ttft: quantiles(ttft),
    gap: quantiles(gaps),
    bunching: gaps.length === 0 ? null : under1ms / gaps.length,
    duration: quantiles(durations),
    deltasReceived,
    deltasSent: streams * expectedDeltas,
    errors,
    errorKinds,
  };
}
