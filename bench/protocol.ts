/**
 * The messages the orchestrator (run.ts) exchanges with its forked children over IPC: the paced
 * upstream (paced-upstream.ts), the load generator (load.ts) and the floor re-framer
 * (floor-reframer.ts). Kept in one place so that both sides of each channel agree on the shapes.
 */

/**
 * direct: the paced upstream itself; service: `POST /api/chat`; floor: the minimal Node
 * re-framer, which speaks the service's UI message stream.
 */
export type TargetKind = 'direct' | 'service' | 'floor';

/** Where the load generator sends its streams, and what each target's SSE looks like. */
export interface TargetSpec {
  kind: TargetKind;
  port: number;
  path: string;
  headers: Record<string, string>;
}

/** One round: `concurrency` workers, each starting a new stream as soon as its last one ends. */
export interface RoundSpec {
  target: TargetSpec;
  concurrency: number;
  /** No new stream after this many were started. */
  maxStreams: number;
  /** No new stream after this long (0: no time limit, only maxStreams). */
  durationMs: number;
  /** Deltas the upstream sends per stream; a stream receiving another number is an error. */
  expectedDeltas: number;
  /** 'chunks' keeps every chunk's arrival time (latency rounds); 'summary' keeps one line per stream (throughput rounds). */
  detail: 'chunks' | 'summary';
  /** A stream still open after this long is destroyed and counted as an error, so a round always ends. */
  streamTimeoutMs: number;
}

/** What the load generator saw of one stream. Times are ms since the round started (performance.now()). */
export interface StreamRecord {
  sentAt: number;
  /** HTTP status, 0 when no response came. */
  status: number;
  /** Arrival of the first chunk that carried a delta. */
  firstDeltaAt: number | null;
  endAt: number | null;
  deltas: number;
  /** `data: [DONE]` was seen. */
  done: boolean;
  errors: string[];
  /** Service streams only: the chat id, to check the reply was persisted. */
  chatId?: string;
  /** detail 'chunks': arrival time of every socket data chunk and how many deltas it completed. */
  chunkAt?: number[];
  chunkDeltas?: number[];
}

export interface RoundResult {
  target: TargetKind;
  /** From the first stream started to the last one ended. */
  wallMs: number;
  streams: StreamRecord[];
  /** The load generator's own health: if it lags, the floor it measures is not the floor. */
  loadCpuMs: number;
  loadLoopDelayP99Ms: number;
}

/** The stream the paced upstream sends by default until told otherwise. */
export interface UpstreamScript {
  deltas: number;
  delayMs: number;
  /** Delta i carries words[i % words.length]. */
  words: string[];
}

export type ToUpstream = { type: 'script'; script: UpstreamScript };
export type FromUpstream =
  | { type: 'ready'; url: string; apiKey: string; deployment: string }
  | { type: 'script-set'; script: UpstreamScript };

/** 'prime' opens keep-alive sockets before a round, outside what the orchestrator measures (CPU, RSS). */
export type ToLoad = { type: 'prime'; target: TargetSpec; sockets: number } | { type: 'round'; spec: RoundSpec };
export type FromLoad = { type: 'ready' } | { type: 'primed'; freeSockets: number } | { type: 'result'; result: RoundResult };

/** The floor re-framer is told its upstream in its arguments and announces its port once listening. */
export type FromFloor = { type: 'ready'; port: number };

/** The reply text a script produces, to check what the service persisted. */
export function scriptText(script: UpstreamScript): string {
  let text = '';
  for (let i = 0; i < script.deltas; i++) text += script.words[i % script.words.length];
  return text;
}
