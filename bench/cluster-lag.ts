import type { ChildProcess } from 'node:child_process';
import type { Endpoint, FollowRecord, FollowRoundResult, FollowRoundSpec, FromFollowLoad, ToFollowLoad } from './cluster-protocol';
import { nextMessage } from './processes';
import { readCpuMs } from './proc-stats';
import { scriptText } from './protocol';
import { setUpstreamScript } from './run-scenario';
import type { Scenario } from './scenarios';
import type { ServiceProcess } from './service-process';
import { percentile } from './stats';

/**
 * Target 2 of the multi-instance issue: how far a reader on another instance (B, the follower)
 * trails the reader on the instance generating the reply (A, the owner). Each stream is posted to
 * A and resumed on B as soon as A's first frame is in; every delta is matched by its SSE id and
 * lag = its arrival on B's reader − its arrival on A's reader, both readers in one process. The
 * baseline, in rounds interleaved with those, resumes on A itself.
 */

export interface LagQuantiles {
  count: number;
  p50: number;
  p99: number;
  max: number;
  min: number;
}

export interface LagOutcome {
  rounds: number;
  streamsPerRound: number;
  /** Deltas that reached A's reader after B's first frame had arrived: B was live, past its catch-up. */
  live: LagQuantiles | null;
  /** The simpler cut: deltas that reached A's reader after B's request was sent (includes B's catch-up). */
  sinceRequest: LagQuantiles | null;
  /** B's catch-up: from B's request being sent to its first frame (ms, p50 / p99 / max). */
  catchUp: LagQuantiles | null;
  /** The live lag by the delta's place in its reply (ids of text-delta frames, in groups): where in a stream the lag is. */
  byPosition: Array<{ deltas: string; lag: LagQuantiles | null }>;
  streams: number;
  deltas: { expected: number; owner: number; follower: number };
  mismatches: {
    /** B's text is not A's. */
    text: number;
    /** B's frames are not A's, byte for byte. */
    frames: number;
    /** B's event ids are not 1, 2, 3… (a gap or a repeat). */
    followerIds: number;
    /** A's text is not what the upstream sent. */
    ownerText: number;
  };
  /** Streams with an error on either side, and the kinds. */
  errors: number;
  errorKinds: Record<string, number>;
  /** A few mismatching streams, as the report shows them. */
  examples: string[];
  /** CPU per delta delivered during the measured rounds (µs): A publishes for B, B relays. */
  ownerCpuUsPerDelta: number | null;
  followerCpuUsPerDelta: number | null;
  load: { cpuMs: number; loopDelayP99MaxMs: number };
}

const STREAM_TIMEOUT_MS = 60_000;
/** Deltas per group of the lag by position: 8 groups for the 64 deltas of the c=100 script. */
const POSITION_GROUP = 8;
const SETTLE_MS = 300;

const isReady = (message: unknown): message is Extract<FromFollowLoad, { type: 'ready' }> => (message as FromFollowLoad).type === 'ready';
const isResult = (message: unknown): message is Extract<FromFollowLoad, { type: 'result' }> => (message as FromFollowLoad).type === 'result';

export async function followLoadReady(child: ChildProcess): Promise<void> {
  await nextMessage(child, isReady, 30_000, 'follow load generator start');
}

async function followRound(child: ChildProcess, spec: FollowRoundSpec): Promise<FollowRoundResult> {
  const answer = nextMessage(child, isResult, STREAM_TIMEOUT_MS + 30_000, 'follow round');
  child.send({ type: 'round', spec } satisfies ToFollowLoad);
  return (await answer).result;
}

function quantiles(values: number[]): LagQuantiles | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1]!, min: sorted[0]! };
}

/** 1, 2, 3… with no gap and no repeat. */
function consecutiveFromOne(ids: number[]): boolean {
  return ids.every((id, index) => id === index + 1);
}

/**
 * Where B, the second reader, resumes: `remote` on another instance (the figure the target is
 * about), `local` on A itself (the baseline: the same two readers in the same load process, with
 * no Redis hop, so what it shows is the measurement's own noise and the local fan-out).
 */
export type FollowKind = 'remote' | 'local';

/** The order of the kinds turns every round, so that neither is always first. */
const ORDERS: FollowKind[][] = [
  ['remote', 'local'],
  ['local', 'remote'],
];

export interface FollowLag {
  outcomes: Record<FollowKind, LagOutcome>;
  /** The measured rounds, raw. */
  raw: Record<FollowKind, FollowRoundResult[]>;
}

/**
 * A warm-up round of each kind, then `rounds` measured rounds of each, interleaved, of
 * `scenario.concurrency` streams started together; returns the figures and the raw rounds.
 */
export async function measureFollowLag(
  bench: { upstream: ChildProcess; followLoad: ChildProcess },
  scenario: Scenario,
  instances: { owner: ServiceProcess; remote: ServiceProcess },
  options: { rounds: number; endpoint: (service: ServiceProcess) => Endpoint; progress: (line: string) => void },
): Promise<FollowLag> {
  await setUpstreamScript(bench.upstream, scenario);
  const followerOf = (kind: FollowKind) => (kind === 'remote' ? instances.remote : instances.owner);
  const raw: Record<FollowKind, FollowRoundResult[]> = { remote: [], local: [] };
  const cpuMs: Record<FollowKind, { owner: number; follower: number }> = { remote: { owner: 0, follower: 0 }, local: { owner: 0, follower: 0 } };
  const round = async (kind: FollowKind, warmup: boolean): Promise<void> => {
    const follower = followerOf(kind);
    const spec: FollowRoundSpec = { owner: options.endpoint(instances.owner), follower: options.endpoint(follower), streams: scenario.concurrency, streamTimeoutMs: STREAM_TIMEOUT_MS };
    const cpu = () => ({ owner: readCpuMs(instances.owner.pid)?.total ?? Number.NaN, follower: readCpuMs(follower.pid)?.total ?? Number.NaN });
    const before = cpu();
    const result = await followRound(bench.followLoad, spec);
    const after = cpu();
    for (const instance of [instances.owner, follower]) {
      if (instance.child.exitCode !== null || instance.child.signalCode !== null) {
        throw new Error(`a service exited during a follow round (code ${instance.child.exitCode}, signal ${instance.child.signalCode})`);
      }
    }
    if (!warmup) {
      raw[kind].push(result);
      cpuMs[kind].owner += after.owner - before.owner;
      cpuMs[kind].follower += after.follower - before.follower;
    }
    const failed = result.streams.filter((stream) => stream.owner.errors.length + stream.follower.errors.length > 0 || !stream.sameFrames).length;
    options.progress(
      `  follow c=${spec.streams}, B ${kind}${warmup ? ' (warm-up)' : ''}: ${result.streams.length} streams in ${(result.wallMs / 1000).toFixed(2)} s, ${failed} with errors or mismatches`,
    );
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  };
  for (const kind of ORDERS[0]!) await round(kind, true);
  for (let index = 0; index < options.rounds; index++) {
    for (const kind of ORDERS[index % ORDERS.length]!) await round(kind, false);
  }
  const outcome = (kind: FollowKind): LagOutcome => {
    const summary = summarizeLag(raw[kind], scenario, options.rounds);
    const perDelta = (ms: number, deltas: number) => (deltas > 0 && Number.isFinite(ms) ? (ms * 1000) / deltas : null);
    // A local B runs in A's process: A's CPU is both readers', and B has no figure of its own.
    summary.ownerCpuUsPerDelta = perDelta(cpuMs[kind].owner, summary.deltas.owner);
    summary.followerCpuUsPerDelta = kind === 'remote' ? perDelta(cpuMs[kind].follower, summary.deltas.follower) : null;
    return summary;
  };
  return { outcomes: { remote: outcome('remote'), local: outcome('local') }, raw };
}

function describeMismatch(stream: FollowRecord, problems: string[]): string {
  const difference = stream.firstDifference;
  const where = difference ? `; first differing frame #${difference.index}: A ${JSON.stringify(difference.owner)}, B ${JSON.stringify(difference.follower)}` : '';
  const ids = (list: number[]) => (list.length > 12 ? `${list.slice(0, 6).join(',')},…,${list.slice(-6).join(',')}` : list.join(','));
  return (
    `chat ${stream.chatId}: ${problems.join(', ')}; A: HTTP ${stream.owner.status}, ${stream.owner.deltaIds.length} deltas, errors [${stream.owner.errors.join(', ')}]; ` +
    `B: HTTP ${stream.follower.status}, ${stream.follower.deltaIds.length} deltas, ids ${ids(stream.follower.frameIds)}, errors [${stream.follower.errors.join(', ')}]${where}`
  );
}

/** Lag of every delta of every stream, and the checks of B's copy against A's. */
export function summarizeLag(results: FollowRoundResult[], scenario: Scenario, rounds: number): LagOutcome {
  const expectedText = scriptText(scenario.script);
  const live: number[] = [];
  const byPosition: number[][] = Array.from({ length: Math.ceil(scenario.script.deltas / POSITION_GROUP) }, () => []);
  const sinceRequest: number[] = [];
  const catchUp: number[] = [];
  const mismatches = { text: 0, frames: 0, followerIds: 0, ownerText: 0 };
  const errorKinds: Record<string, number> = {};
  const examples: string[] = [];
  let streams = 0;
  let errors = 0;
  const deltas = { expected: 0, owner: 0, follower: 0 };
  for (const result of results) {
    for (const stream of result.streams) {
      streams++;
      const { owner, follower } = stream;
      deltas.expected += scenario.script.deltas;
      deltas.owner += owner.deltaIds.length;
      deltas.follower += follower.deltaIds.length;
      const kinds = [...owner.errors.map((kind) => `A ${kind}`), ...follower.errors.map((kind) => `B ${kind}`)];
      if (kinds.length > 0) errors++;
      for (const kind of kinds) errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      const problems: string[] = [];
      const check = (failed: boolean, kind: keyof typeof mismatches, problem: string): void => {
        if (!failed) return;
        mismatches[kind]++;
        problems.push(problem);
      };
      check(follower.text !== owner.text, 'text', 'text differs');
      check(!stream.sameFrames, 'frames', 'frames differ');
      check(!consecutiveFromOne(follower.frameIds), 'followerIds', 'B ids not 1, 2, 3…');
      check(owner.text !== expectedText, 'ownerText', 'A text is not the upstream text');
      if ((problems.length > 0 || kinds.length > 0) && examples.length < 5) examples.push(describeMismatch(stream, problems.length > 0 ? problems : ['errors']));
      if (follower.sentAt !== null && follower.firstFrameAt !== null) catchUp.push(follower.firstFrameAt - follower.sentAt);
      collectLags(stream, { live, sinceRequest, byPosition });
    }
  }
  return {
    rounds,
    streamsPerRound: scenario.concurrency,
    live: quantiles(live),
    sinceRequest: quantiles(sinceRequest),
    catchUp: quantiles(catchUp),
    byPosition: byPosition.map((lags, group) => ({
      deltas: `${group * POSITION_GROUP + 1}–${Math.min(scenario.script.deltas, (group + 1) * POSITION_GROUP)}`,
      lag: quantiles(lags),
    })),
    streams,
    deltas,
    mismatches,
    errors,
    errorKinds,
    examples,
    ownerCpuUsPerDelta: null,
    followerCpuUsPerDelta: null,
    load: {
      cpuMs: results.reduce((sum, result) => sum + result.loadCpuMs, 0),
      loopDelayP99MaxMs: results.reduce((max, result) => Math.max(max, result.loadLoopDelayP99Ms), 0),
    },
  };
}

/**
 * Adds the lag of each delta B got, matched by id, to `live` (reached A after B's first frame)
 * and its delta-position group, and to `sinceRequest` (reached A after B's request was sent).
 */
function collectLags(stream: FollowRecord, into: { live: number[]; sinceRequest: number[]; byPosition: number[][] }): void {
  const { owner, follower } = stream;
  if (follower.sentAt === null || follower.firstFrameAt === null) return;
  const ownerAt = new Map<number, { at: number; position: number }>();
  for (let index = 0; index < owner.deltaIds.length; index++) ownerAt.set(owner.deltaIds[index]!, { at: owner.deltaAt[index]!, position: index });
  for (let index = 0; index < follower.deltaIds.length; index++) {
    const onOwner = ownerAt.get(follower.deltaIds[index]!);
    if (onOwner === undefined) continue; // a delta A never got: counted as a mismatch, not a lag
    const lag = follower.deltaAt[index]! - onOwner.at;
    // Deltas A had before B asked came in B's catch-up burst: their "lag" is B's setup, not the relay's.
    if (onOwner.at >= follower.sentAt) into.sinceRequest.push(lag);
    if (onOwner.at < follower.firstFrameAt) continue;
    into.live.push(lag);
    into.byPosition[Math.floor(onOwner.position / POSITION_GROUP)]?.push(lag);
  }
}
