/**
 * The follow load generator of the cluster benchmark, in its own process so that its CPU and
 * event loop are not the services'. On the orchestrator's request (IPC) it starts a round of
 * streams together: each posts a new chat to the owner instance and, as soon as the first frame
 * of that reply arrives, resumes it on the follower instance (no Last-Event-ID: from the start).
 * Both readers of a stream are in this process and time their socket reads on one clock
 * (performance.now()), so the follower's lag behind the owner is the difference of two readings;
 * the responses are parsed only once the round is over, so that the readings wait on nothing.
 * It sends back, raw, when every delta arrived on each side and whether the frames match; all
 * statistics are computed by the orchestrator.
 */
import * as net from 'node:net';
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Endpoint, FollowRecord, FollowRoundResult, FollowRoundSpec, FromFollowLoad, ReaderRecord, ToFollowLoad } from './cluster-protocol';

const PROMPT = 'Say something short.';
const TEXT_DELTA = '"type":"text-delta"';
/** monitorEventLoopDelay samples with a timer of this period, and its values include that period. */
const LOOP_DELAY_RESOLUTION_MS = 10;

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

function send(message: FromFollowLoad): void {
  process.send?.(message);
}

/**
 * Cuts one reader's SSE bytes into frames as they arrive and notes, per text-delta frame, its id
 * and the arrival time of the chunk that completed it. Only the id line is read while the stream
 * runs: the text is taken from the frames at the end (textOf), off the clock.
 */
/** Socket chunks as they arrived, and when: parsed only once the response has ended. */
interface Arrivals {
  chunks: Buffer[];
  at: number[];
}

/**
 * The frames of a raw HTTP/1.1 response (headers, then a chunked body), each with the arrival time
 * of the socket read that completed it. The service writes whole frames in each body chunk, so a
 * frame is complete when its body chunk is.
 */
function parseResponse(arrivals: Arrivals, record: ReaderRecord): string[] {
  const raw = Buffer.concat(arrivals.chunks);
  // The end offset (exclusive) of each socket read within `raw`, to time a byte by its read.
  const ends: number[] = [];
  let total = 0;
  for (const chunk of arrivals.chunks) ends.push((total += chunk.length));
  let read = 0;
  const arrivalOf = (offset: number): number => {
    while (read < ends.length - 1 && ends[read]! <= offset) read++;
    return arrivals.at[read]!;
  };
  const headerEnd = raw.indexOf('\r\n\r\n');
  if (headerEnd === -1) {
    record.errors.push('no_headers');
    return [];
  }
  record.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw.subarray(0, headerEnd).toString('latin1'))?.[1] ?? 0);
  if (record.status !== 200) {
    record.errors.push(`http_${record.status}`);
    return [];
  }
  const frames: string[] = [];
  let offset = headerEnd + 4;
  for (;;) {
    const sizeEnd = raw.indexOf('\r\n', offset);
    if (sizeEnd === -1) break;
    const size = Number.parseInt(raw.subarray(offset, sizeEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    const dataStart = sizeEnd + 2;
    const dataEnd = dataStart + size;
    if (dataEnd > raw.length) {
      record.errors.push('cut');
      break;
    }
    const at = arrivalOf(dataEnd - 1);
    for (const frame of raw.subarray(dataStart, dataEnd).toString('utf8').split('\n\n')) {
      if (frame === '' || frame.startsWith(':')) continue; // a heartbeat comment, not part of the reply
      take(`${frame}\n\n`, at, record, frames);
    }
    offset = dataEnd + 2;
  }
  return frames;
}

function take(frame: string, at: number, record: ReaderRecord, frames: string[]): void {
  if (record.firstFrameAt === null) record.firstFrameAt = round3(at);
  frames.push(frame);
  const id = frame.startsWith('id: ') ? Number(frame.slice(4, frame.indexOf('\n'))) : -1;
  record.frameIds.push(id);
  if (frame.includes(TEXT_DELTA)) {
    record.deltaIds.push(id);
    record.deltaAt.push(round3(at));
  }
  if (frame.includes('\ndata: [DONE]')) record.done = true;
}

function emptyRecord(): ReaderRecord {
  return { status: 0, sentAt: null, firstFrameAt: null, deltaIds: [], deltaAt: [], frameIds: [], text: '', done: false, errors: [] };
}

interface ReadOptions {
  endpoint: Endpoint;
  method: 'POST' | 'GET';
  path: string;
  body?: string;
  origin: number;
  timeoutMs: number;
  /** Called once the first frame (id 1) has arrived. */
  onFirstFrame?: () => void;
}

/**
 * One request on a socket of its own (Connection: close), read raw: each socket read is stamped
 * and kept, and nothing else is done until the response has ended. Node's HTTP client and a
 * frame parser cost tens of microseconds a read; with 200 readers whose frames come in bursts
 * every 20 ms, that work delayed the stamps of the reads queued behind it by milliseconds, and
 * unevenly between the two readers of a stream: the instrument measured itself.
 */
function read(options: ReadOptions, done: (parse: () => { record: ReaderRecord; frames: string[] }) => void): void {
  const record = emptyRecord();
  const arrivals: Arrivals = { chunks: [], at: [] };
  let settled = false;
  let sawFirst = options.onFirstFrame === undefined;
  const settle = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    // Parsed once the whole round has ended: here, it would hold up the reads of the streams
    // still running.
    done(() => {
      const frames = parseResponse(arrivals, record);
      if (record.status === 200 && !record.done && !record.errors.includes('timeout')) record.errors.push('missing_done');
      return { record, frames };
    });
  };
  const headers = Object.entries({ ...options.endpoint.headers, host: `127.0.0.1:${options.endpoint.port}`, connection: 'close' });
  if (options.body !== undefined) headers.push(['content-type', 'application/json'], ['content-length', String(Buffer.byteLength(options.body))]);
  const head = `${options.method} ${options.path} HTTP/1.1\r\n${headers.map(([name, value]) => `${name}: ${String(value)}\r\n`).join('')}\r\n`;
  const socket = net.connect({ host: '127.0.0.1', port: options.endpoint.port, noDelay: true });
  const timer = setTimeout(() => {
    record.errors.push('timeout');
    socket.destroy();
  }, options.timeoutMs);
  socket.on('data', (chunk: Buffer) => {
    arrivals.at.push(performance.now() - options.origin); // first: nothing else is timed
    arrivals.chunks.push(chunk);
    if (!sawFirst && chunk.includes('id: 1\n')) {
      sawFirst = true;
      options.onFirstFrame!();
    }
  });
  socket.on('error', (error: NodeJS.ErrnoException) => record.errors.push(`socket_${error.code ?? error.message}`));
  socket.on('close', settle);
  record.sentAt = round3(performance.now() - options.origin);
  socket.write(options.body === undefined ? head : head + options.body);
}

function firstDifference(owner: string[], follower: string[]): FollowRecord['firstDifference'] {
  const cut = (frame: string | undefined) => (frame === undefined ? null : frame.slice(0, 300));
  for (let index = 0; index < Math.max(owner.length, follower.length); index++) {
    if (owner[index] !== follower[index]) return { index, owner: cut(owner[index]), follower: cut(follower[index]) };
  }
  return undefined;
}

/** One stream: the POST on the owner, and the resume on the follower once the owner's first frame is in. */
function followStream(spec: FollowRoundSpec, origin: number, done: (result: () => FollowRecord) => void): void {
  const chatId = randomUUID();
  const body = JSON.stringify({ chatId, messages: [{ role: 'user', content: PROMPT }] });
  let owner: (() => { record: ReaderRecord; frames: string[] }) | undefined;
  let follower: (() => { record: ReaderRecord; frames: string[] }) | undefined;
  let followerStarted = false;
  const finish = (): void => {
    if (!owner || (followerStarted && !follower)) return;
    const ownerParse = owner;
    const followerParse = follower;
    done(() => {
      const ownerSide = ownerParse();
      const followerSide = followerParse?.() ?? { record: { ...emptyRecord(), errors: ['not_started'] }, frames: [] };
      const difference = firstDifference(ownerSide.frames, followerSide.frames);
      ownerSide.record.text = textOf(ownerSide.frames);
      followerSide.record.text = textOf(followerSide.frames);
      return { chatId, owner: ownerSide.record, follower: followerSide.record, sameFrames: difference === undefined, ...(difference ? { firstDifference: difference } : {}) };
    });
  };
  const startFollower = (): void => {
    followerStarted = true;
    read({ endpoint: spec.follower, method: 'GET', path: `/api/chat/${chatId}/stream`, origin, timeoutMs: spec.streamTimeoutMs }, (parse) => {
      follower = parse;
      finish();
    });
  };
  read({ endpoint: spec.owner, method: 'POST', path: '/api/chat', body, origin, timeoutMs: spec.streamTimeoutMs, onFirstFrame: startFollower }, (parse) => {
    owner = parse;
    finish();
  });
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
    const results: Array<() => FollowRecord> = [];
    // All streams start together, as in a burst round of the main benchmark.
    for (let index = 0; index < spec.streams; index++) {
      followStream(spec, origin, (result) => {
        results.push(result);
        if (results.length < spec.streams) return;
        loopDelay.disable();
        const cpu = process.cpuUsage(cpuBefore);
        const wallMs = round3(performance.now() - origin);
        resolve({
          streams: results.map((parse) => parse()),
          wallMs,
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
