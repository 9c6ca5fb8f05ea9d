/**
 * The load generator, in its own process so that its CPU and event loop are not the service's.
 * It runs one round at a time on the orchestrator's request (IPC) and sends back what it saw of
 * every stream, raw: send time, arrival time and delta count of every socket chunk, end time,
 * errors. All statistics are computed by the orchestrator.
 *
 * node:http with a keep-alive Agent per target (no fetch): the cheapest client Node has, and
 * the same sockets are reused round after round, so a measured round does not pay for TCP setup.
 */
import * as http from 'node:http';
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { FromLoad, RoundResult, RoundSpec, StreamRecord, TargetKind, TargetSpec, ToLoad } from './protocol';
import { SseDeltaCounter } from './sse-delta-counter';

const PROMPT = 'Say something short.';
/** What the service itself sends upstream for such a turn, so that the upstream parses the same body directly. */
const DIRECT_BODY = JSON.stringify({
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: PROMPT },
  ],
  temperature: 0.7,
  max_tokens: 4096,
  stream: true,
  stream_options: { include_usage: true },
});

// `timeout` makes the Agent honour the servers' `Keep-Alive: timeout=5` hint and retire an idle
// socket before the server closes it, instead of racing the close with a new request.
// maxFreeSockets above the largest round: the default (256) would close most sockets after a c=1000 round.
const agents: Record<TargetKind, http.Agent> = {
  direct: new http.Agent({ keepAlive: true, maxSockets: 4096, maxFreeSockets: 4096, timeout: 120_000 }),
  service: new http.Agent({ keepAlive: true, maxSockets: 4096, maxFreeSockets: 4096, timeout: 120_000 }),
  floor: new http.Agent({ keepAlive: true, maxSockets: 4096, maxFreeSockets: 4096, timeout: 120_000 }),
};
/** The floor reads and drops its request body: a service-shaped one, without the chat id (nothing is stored). */
const FLOOR_BODY = JSON.stringify({ messages: [{ role: 'user', content: PROMPT }] });

function send(message: FromLoad): void {
  process.send?.(message);
}

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

/** Starts one stream; `done` gets its record exactly once, whatever happens to it. */
function startStream(spec: RoundSpec, origin: number, done: (record: StreamRecord) => void): void {
  const { target } = spec;
  const chatId = target.kind === 'service' ? randomUUID() : undefined;
  const body = chatId ? JSON.stringify({ chatId, messages: [{ role: 'user', content: PROMPT }] }) : target.kind === 'floor' ? FLOOR_BODY : DIRECT_BODY;
  const withChunks = spec.detail === 'chunks';
  const record: StreamRecord = {
    sentAt: 0,
    status: 0,
    firstDeltaAt: null,
    endAt: null,
    deltas: 0,
    done: false,
    errors: [],
    ...(chatId ? { chatId } : {}),
    ...(withChunks ? { chunkAt: [], chunkDeltas: [] } : {}),
  };
  const counter = new SseDeltaCounter(target.kind);
  let settled = false;
  const settle = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    record.endAt = round3(performance.now() - origin);
    record.done = counter.done;
    if (record.status === 200) {
      if (!counter.done) record.errors.push('missing_done');
      if (counter.failedPart) record.errors.push('error_part');
      if (record.deltas !== spec.expectedDeltas) record.errors.push('delta_count');
    }
    done(record);
  };

  const request = http.request({
    agent: agents[target.kind],
    host: '127.0.0.1',
    port: target.port,
    method: 'POST',
    path: target.path,
    headers: { ...target.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  const timer = setTimeout(() => {
    record.errors.push('timeout');
    request.destroy();
  }, spec.streamTimeoutMs);

  request.on('response', (response) => {
    record.status = response.statusCode ?? 0;
    if (record.status !== 200) record.errors.push(`http_${record.status}`);
    response.setEncoding('latin1');
    response.on('data', (chunk: string) => {
      const at = performance.now() - origin;
      const deltas = record.status === 200 ? counter.push(chunk) : 0;
      if (deltas > 0) {
        record.deltas += deltas;
        record.firstDeltaAt ??= round3(at);
      }
      if (withChunks) {
        record.chunkAt!.push(round3(at));
        record.chunkDeltas!.push(deltas);
      }
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
  // Destroyed (timeout) before any response, with no 'error': still one record.
  request.on('close', () => {
    if (record.status !== 0) return;
    if (record.errors.length === 0) record.errors.push('closed');
    settle();
  });
  record.sentAt = round3(performance.now() - origin);
  request.end(body);
}

function freeSockets(agent: http.Agent): number {
  let count = 0;
  for (const sockets of Object.values(agent.freeSockets)) count += sockets?.length ?? 0;
  return count;
}

/** A cheap request that leaves a keep-alive socket in the pool (the fake answers 404, the service 200). */
function ping(target: TargetSpec): Promise<void> {
  return new Promise((resolve) => {
    const request = http.get({ agent: agents[target.kind], host: '127.0.0.1', port: target.port, path: '/healthz' }, (response) => {
      response.resume();
      response.on('end', () => resolve());
      response.on('error', () => resolve());
    });
    request.on('error', () => resolve());
  });
}

/**
 * Opens `count` keep-alive sockets before a round, so that no round measures TCP setup: the
 * servers close idle sockets after 5 s, and while one target runs the other's sockets idle.
 * In waves of at most 200 new connections, because 1000 SYNs at once overflow the servers'
 * default listen backlog (511) and cost 1-3 s SYN retries, a kernel artefact, not the service.
 */
async function primeSockets(target: TargetSpec, count: number): Promise<number> {
  const agent = agents[target.kind];
  let free = freeSockets(agent);
  for (let wave = 0; free < count && wave < 20; wave++) {
    const inFlight = Math.min(count, free + 200);
    await Promise.all(Array.from({ length: inFlight }, () => ping(target)));
    await new Promise((resolve) => setImmediate(resolve)); // sockets go back to the pool on the next turn
    free = freeSockets(agent);
  }
  return free;
}

/** monitorEventLoopDelay samples with a timer of this period, and its values include that period. */
const LOOP_DELAY_RESOLUTION_MS = 10;

function runRound(spec: RoundSpec): Promise<RoundResult> {
  return new Promise((resolve) => {
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    loopDelay.enable();
    const cpuBefore = process.cpuUsage();
    const origin = performance.now();
    const deadline = spec.durationMs > 0 ? origin + spec.durationMs : Number.POSITIVE_INFINITY;
    const streams: StreamRecord[] = [];
    let started = 0;
    let open = 0;
    let finished = false;

    // A worker starts its next stream when the last one ends, until maxStreams or the deadline.
    const next = (): void => {
      if (started < spec.maxStreams && performance.now() < deadline) {
        started++;
        open++;
        startStream(spec, origin, (record) => {
          streams.push(record);
          open--;
          next();
        });
        return;
      }
      if (open === 0 && !finished) {
        finished = true;
        loopDelay.disable();
        const cpu = process.cpuUsage(cpuBefore);
        const lastEnd = streams.reduce((latest, s) => Math.max(latest, s.endAt ?? 0), 0);
        resolve({
          target: spec.target.kind,
          wallMs: round3(lastEnd),
          streams,
          loadCpuMs: round3((cpu.user + cpu.system) / 1000),
          loadLoopDelayP99Ms: round3(Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_DELAY_RESOLUTION_MS)),
        });
      }
    };
    // All workers start together: for a burst round (concurrency = maxStreams) every stream is sent at once.
    for (let worker = 0; worker < spec.concurrency; worker++) next();
  });
}

if (!process.send) throw new Error('load.ts is started by bench/run.ts (it needs an IPC channel)');
process.on('message', (message: ToLoad) => {
  if (message.type === 'prime') void primeSockets(message.target, message.sockets).then((freeSockets) => send({ type: 'primed', freeSockets }));
  if (message.type === 'round') void runRound(message.spec).then((result) => send({ type: 'result', result }));
});
// The orchestrator died or finished: leave at once (open sockets die with the process).
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
