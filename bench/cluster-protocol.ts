/**
 * The messages between the cluster benchmark (cluster.ts) and its follow load generator
 * (cluster-follow.ts): each stream is posted to one instance (the owner, which generates the reply)
 * and, as soon as its first frame arrives, resumed on another (the follower) with
 * `GET /api/chat/:chatId/stream`. Kept apart from both so that both sides agree on the shapes.
 */

/** One instance of the cluster as the load generator reaches it. */
export interface Endpoint {
  port: number;
  headers: Record<string, string>;
}

export interface FollowRoundSpec {
  owner: Endpoint;
  follower: Endpoint;
  /** Streams started together. */
  streams: number;
  /** A stream (either reader) still open after this long is destroyed and counted as an error. */
  streamTimeoutMs: number;
}

/** What one reader (the POST on the owner, or the GET on the follower) saw. Times: ms since the round started. */
export interface ReaderRecord {
  status: number;
  /** Request sent (the follower's: when the owner's first frame had arrived). */
  sentAt: number | null;
  /** Arrival of the first socket chunk that completed a frame. */
  firstFrameAt: number | null;
  /** Every text-delta frame: its SSE id and the arrival time of the chunk that completed it. */
  deltaIds: number[];
  deltaAt: number[];
  /** Every frame's SSE id, in order (heartbeat comments left out): to see gaps and repeats. */
  frameIds: number[];
  /** The text the deltas make, in order. */
  text: string;
  /** `data: [DONE]` was seen. */
  done: boolean;
  errors: string[];
}

export interface FollowRecord {
  chatId: string;
  owner: ReaderRecord;
  follower: ReaderRecord;
  /** The follower's frames, byte for byte, are the owner's. */
  sameFrames: boolean;
  /** When they are not: the first frame that differs, on each side (cut to 300 characters). */
  firstDifference?: { index: number; owner: string | null; follower: string | null };
}

export interface FollowRoundResult {
  streams: FollowRecord[];
  wallMs: number;
  /** The load generator's own health: if it lags, it adds to the lag it measures. */
  loadCpuMs: number;
  loadLoopDelayP99Ms: number;
}

export type ToFollowLoad = { type: 'round'; spec: FollowRoundSpec };
export type FromFollowLoad = { type: 'ready' } | { type: 'result'; result: FollowRoundResult };
