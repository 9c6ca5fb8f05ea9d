/**
 * The follow load generator of the cluster benchmark, in its own process so that its CPU and
 * event loop are not the services'. On the orchestrator's request (IPC) it starts a round of
 * streams together: each posts a new chat to the owner instance and, as soon as the first frame
 * of that reply arrives, resumes it on the follower instance (no Last-Event-ID: from the start).
 * Both readers of a stream are in this process and time their frames on one clock
 * (performance.now()), so the follower's lag behind the owner is the difference of two readings.
 * It sends back, raw, when every delta arrived on each side and whether the frames match; all
 * statistics are computed by the orchestrator.
 */
import * as http from 'node:http';
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Endpoint, FollowRecord, FollowRoundResult, FollowRoundSpec, FromFollowLoad, ReaderRecord, ToFollowLoad } from './cluster-protocol';

const PROMPT = 'Say something short.';
const TEXT_DELTA = '"type":"text-delta"';
/** monitorEventLoopDelay samples with a timer of this period, and its values include that period. */
const LOOP_DELAY_RESOLUTION_MS = 10;

// One keep-alive pool per instance, larger than a round, so that later rounds reuse the sockets.
const agents = {
  owner: new http.Agent({ keepAlive: true, maxSockets: 4096, maxFreeSockets: 4096, timeout: 120_000 }),
  follower: new http.Agent({ keepAlive: true, maxSockets: 4096, maxFreeSockets: 4096, timeout: 120_000 }),
};

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

function send(message: FromFollowLoad): void {
  process.send?.(message);
}

/**
 * Cuts one reader's SSE bytes into frames as they arrive and notes, per text-delta frame, its id
 * and the arrival time of the chunk that completed it. Only the id line is read while the stream
 * runs: the text is taken from the frames at the end (textOf), off the clock.
 */
class FrameReader {
  readonly frames: string[] = [];
  private tail = '';

  constructor(
    private readonly record: ReaderRecord,
    private readonly onFirstFrame?: () => void,
  ) {}

  push(chunk: string, at: number): void {
    const text = this.tail.length === 0 ? chunk : this.tail + chunk;
    let start = 0;
    // JSON escapes newlines, so a blank line only ever ends a frame.
    for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n', start)) {
      this.take(text.slice(start, end + 2), at);
      start = end + 2;
    }
    this.tail = start === text.length ? '' : text.slice(start);
  }

  private take(frame: string, at: number): void {
    if (frame.startsWith(':')) return; // a heartbeat comment, not part of the reply
    const { record } = this;
    const first = record.firstFrameAt === null;
    if (first) record.firstFrameAt = round3(at);
    this.frames.push(frame);
    const id = frame.startsWith('id: ') ? Number(frame.slice(4, frame.indexOf('\n'))) : -1;
    record.frameIds.push(id);
    if (frame.includes(TEXT_DELTA)) {
      record.deltaIds.push(id);
      record.deltaAt.push(round3(at));
    }
    if (frame.includes('\ndata: [DONE]')) record.done = true;
    if (first) this.onFirstFrame?.();
  }
}

function emptyRecord(): ReaderRecord {
  return { status: 0, sentAt: null, firstFrameAt: null, deltaIds: [], deltaAt: [], frameIds: [], text: '', done: false, errors: [] };
}

interface ReadOptions {
  agent: http.Agent;
  endpoint: Endpoint;
  method: 'POST' | 'GET';
  path: string;
  body?: string;
  origin: number;
  timeoutMs: number;
  onFirstFrame?: () => void;
}

/** Sends one request and reads its event stream to the end; `done` gets the record exactly once. */
function read(options: ReadOptions, done: (record: ReaderRecord, frames: string[]) => void): void {
  const record = emptyRecord();
  const reader = new FrameReader(record, options.onFirstFrame);
  let settled = false;
  const settle = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (record.status === 200 && !record.done) record.errors.push('missing_done');
    done(record, reader.frames);
  };
  const headers: http.OutgoingHttpHeaders = { ...options.endpoint.headers };
  if (options.body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(options.body) });
  const request = http.request({ agent: options.agent, host: '127.0.0.1', port: options.endpoint.port, method: options.method, path: options.path, headers });
  const timer = setTimeout(() => {
    record.errors.push('timeout');
    request.destroy();
  }, options.timeoutMs);

  request.on('response', (response) => {
    record.status = response.statusCode ?? 0;
    if (record.status !== 200) record.errors.push(`http_${record.status}`);
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      const at = performance.now() - options.origin; // first: the parsing below is not the service's time
      if (record.status === 200) reader.push(chunk, at);
    });
    response.on('error', (error: NodeJS.ErrnoException) => record.errors.push(`response_${error.code ?? error.message}`));
    response.on('close', () => {
      if (!response.complete && !record.errors.includes('timeout')) record.errors.push('cut');
      settle();
    });
  });
  request.on('error', (error: NodeJS.ErrnoException) => {
    if (record.status === 0) record.errors.push(`socket_${error.code ?? error.message}`);
    settle();
  });
  request.on('close', () => {
    if (record.status !== 0) return;
    if (record.errors.length === 0) record.errors.push('closed');
    settle();
  });
  record.sentAt = round3(performance.now() - options.origin);
  request.end(options.body);
}

/** The first frame where the follower's copy and the owner's differ, or undefined when they are equal. */
function firstDifference(owner: string[], follower: string[]): FollowRecord['firstDifference'] {
  const cut = (frame: string | undefined) => (frame === undefined ? null : frame.slice(0, 300));
  for (let index = 0; index < Math.max(owner.length, follower.length); index++) {
    if (owner[index] !== follower[index]) return { index, owner: cut(owner[index]), follower: cut(follower[index]) };
  }
  return undefined;
}

/** One stream: the POST on the owner, and the resume on the follower once the owner's first frame is in. */
function followStream(spec: FollowRoundSpec, origin: number, done: (record: FollowRecord) => void): void {
  const chatId = randomUUID();
  const body = JSON.stringify({ chatId, messages: [{ role: 'user', content: PROMPT }] });
  let owner: { record: ReaderRecord; frames: string[] } | undefined;
  let follower: { record: ReaderRecord; frames: string[] } | undefined;
  let followerStarted = false;
  const finish = (): void => {
    if (!owner || (followerStarted && !follower)) return;
    const followerSide = follower ?? { record: { ...emptyRecord(), errors: ['not_started'] }, frames: [] };
    const difference = firstDifference(owner.frames, followerSide.frames);
    owner.record.text = textOf(owner.frames);
    followerSide.record.text = textOf(followerSide.frames);
    done({ chatId, owner: owner.record, follower: followerSide.record, sameFrames: difference === undefined, ...(difference ? { firstDifference: difference } : {}) });
  };
  const startFollower = (): void => {
    followerStarted = true;
    read(
      { agent: agents.follower, endpoint: spec.follower, method: 'GET', path: `/api/chat/${chatId}/stream`, origin, timeoutMs: spec.streamTimeoutMs },
      (record, frames) => {
        follower = { record, frames };
        finish();
      },
    );
  };
  read(
    { agent: agents.owner, endpoint: spec.owner, method: 'POST', path: '/api/chat', body, origin, timeoutMs: spec.streamTimeoutMs, onFirstFrame: startFollower },
    (record, frames) => {
      owner = { record, frames };
      finish();
    },
  );
}

/** The reply's text, from its text-delta frames in order; a frame that is not JSON shows as such rather than failing the round. */
function textOf(frames: string[]): string {
  let text = '';
  for (const frame of frames) {
    if (!frame.includes(TEXT_DELTA)) continue;
    const data = frame.slice(frame.indexOf('data: ') + 'data: '.length, -2);
    try {
      text += (JSON.parse(data) as { delta: string }).delta;
    } catch {
      text += '(a text-delta frame that is not JSON)';
    }
  }
  return text;
}

function runRound(spec: FollowRoundSpec): Promise<FollowRoundResult> {
  return new Promise((resolve) => {
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    loopDelay.enable();
    const cpuBefore = process.cpuUsage();
    const origin = performance.now();
    const streams: FollowRecord[] = [];
    // All streams start together, as in a burst round of the main benchmark.
    for (let index = 0; index < spec.streams; index++) {
      followStream(spec, origin, (record) => {
        streams.push(record);
        if (streams.length < spec.streams) return;
        loopDelay.disable();
        const cpu = process.cpuUsage(cpuBefore);
        resolve({
          streams,
          wallMs: round3(performance.now() - origin),
          loadCpuMs: round3((cpu.user + cpu.system) / 1000),
          loadLoopDelayP99Ms: round3(Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_DELAY_RESOLUTION_MS)),
        });
      });
    }
  });
}

if (!process.send) throw new Error('cluster-follow.ts is started by bench/cluster.ts (it needs an IPC channel)');
process.on('message', (message: ToFollowLoad) => {
  if (message.type === 'round') void runRound(message.spec).then((result) => send({ type: 'result', result }));
});
// The orchestrator died or finished: leave at once (open sockets die with the process).
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
