import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { eventually, openChatStream, openSse, postChat, userTurn, type SseConnection } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { connectUnread, parseResponse, type UnreadConnection } from '../support/raw-http';
import { rebuildText } from '../support/sse';
import { startTestService, type TestService, type TestServiceOptions } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;
let alice: string;
let bob: string;
const connections: Array<UnreadConnection | SseConnection> = [];

async function start(options: TestServiceOptions = {}) {
  service = await startTestService({ upstream, ...options });
  if (options.auth) {
    alice = (await service.keys!.create('alice')).key;
    bob = (await service.keys!.create('bob')).key;
  }
}

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  for (const connection of connections.splice(0)) {
    if ('hangUp' in connection) connection.hangUp();
    else connection.destroy();
  }
  await service.close();
  await upstream.close();
});

const SLOW_READER_LINE = 'slow reader disconnected: the reply had ended and it had not taken the rest';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const port = () => Number(new URL(service.url).port);

/** About 8 MB of SSE, far more than the kernel's buffers of a connection nobody reads hold. */
function largeReply(): string[] {
  return Array.from({ length: 1100 }, (_, index) => `${String(index).padStart(4, '0')}:${'é✓ '.repeat(1200)}\n`);
}

/** A POST /api/chat as bytes, for a raw connection. */
function chatRequest(body: unknown, headers: Record<string, string> = {}): string {
  const json = JSON.stringify(body);
  const lines = Object.entries({ host: '127.0.0.1', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)), ...headers });
  return `POST /api/chat HTTP/1.1\r\n${lines.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n${json}`;
}

/** Starts a turn on a connection that then reads nothing. */
async function postUnread(chatId: string, headers: Record<string, string> = {}): Promise<UnreadConnection> {
  const connection = await connectUnread(port(), chatRequest(userTurn(chatId, 'Write a lot'), headers));
  connections.push(connection);
  return connection;
}

interface LogLine {
  msg: string;
  time: string;
  chatId?: string;
  [key: string]: unknown;
}

const logLines = () => service.logs.map((line) => JSON.parse(line) as LogLine);

function waitForLog(message: string, chatId: string, timeoutMs = 10_000): Promise<LogLine> {
  return eventually(() => logLines().find((line) => line.msg === message && line.chatId === chatId), timeoutMs);
}

/**
 * Waits until a streamed (200) response to `url` has closed: its request's closing log line. Cut
 * off before the end it says "request aborted"; cut off after `end()`, with bytes still unread,
 * "request completed" (Node 24's write callbacks can let the stream reach its `end()` first).
 */
function waitForClose(url: string): Promise<LogLine> {
  return eventually(() =>
    logLines().find((line) => line.url === url && line.status === 200 && (line.msg === 'request aborted' || line.msg === 'request completed')),
  );
}

/** The end of a chunked response that closed its stream normally. */
const WHOLE_STREAM_END = 'data: [DONE]\n\n\r\n0\r\n\r\n';

function storedReply(chatId: string) {
  return eventually(async () => {
    const [row] = await service.query<{ content: string; status: string }>(
      "SELECT content, status FROM Message WHERE chatId = ? AND role = 'assistant' AND status != 'streaming'",
      chatId,
    );
    return row;
  });
}

describe('slow readers', () => {
  test('a reader that takes nothing is disconnected slow_reader_timeout_seconds after the reply ended, not before', async () => {
    await start({ configToml: '[streaming]\nslow_reader_timeout_seconds = 1\n' });
    const chatId = randomUUID();
    const content = largeReply();
    upstream.enqueue({ kind: 'stream', content });
    const connection = await postUnread(chatId);

    const ended = await waitForLog('reply ended', chatId);
    const cut = await waitForLog(SLOW_READER_LINE, chatId, 6000);

    // Timers may fire a millisecond early by the wall clock.
    const waitedMs = Date.parse(cut.time) - Date.parse(ended.time);
    expect(waitedMs).toBeGreaterThanOrEqual(990);
    expect(waitedMs).toBeLessThan(5000);
    expect(cut).toMatchObject({ level: 40, slowReaderTimeoutSeconds: 1 });
    // The reader had part of the reply and never its end: the connection was cut under it.
    const { received } = await connection.readToClose();
    const text = received.toString('utf8');
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain('"type":"text-delta"');
    expect(text).not.toContain('[DONE]');
    // What was generated is kept whatever became of the reader.
    expect(await storedReply(chatId)).toEqual({ content: content.join(''), status: 'completed' });
  });

  test('a reader that falls behind and takes the rest within the timeout gets the whole reply and keeps its connection', async () => {
    await start({ configToml: '[streaming]\nslow_reader_timeout_seconds = 1\n' });
    const chatId = randomUUID();
    const content = largeReply();
    upstream.enqueue({ kind: 'stream', content });
    const connection = await postUnread(chatId);
    await waitForLog('reply ended', chatId);

    const first = await connection.readUntilEndsWith(WHOLE_STREAM_END);
    expect(rebuildText(parseResponse(first)!.body.toString('utf8'))).toBe(content.join(''));

    // A second reply on the same connection that lasts past the first one's deadline.
    const secondChatId = randomUUID();
    const words = Array.from({ length: 12 }, (_, index) => `w${index} `);
    upstream.enqueue({ kind: 'stream', content: words, delayMs: 150 });
    connection.write(chatRequest(userTurn(secondChatId, 'Count slowly')));
    const both = await connection.readUntilEndsWith(WHOLE_STREAM_END);
    expect(rebuildText(parseResponse(both.subarray(first.length))!.body.toString('utf8'))).toBe(words.join(''));
    expect(logLines().filter((line) => line.msg === SLOW_READER_LINE)).toEqual([]);
  });
});

describe('ended replies are freed', () => {
  test('once its slow reader is disconnected, nothing keeps the ended reply and its parts in memory', async () => {
    await start({ configToml: '[streaming]\nslow_reader_timeout_seconds = 1\n' });
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: largeReply(), firstFrameDelayMs: 300 });
    await postUnread(chatId);
    const generation = await weakGeneration(chatId);

    await waitForLog(SLOW_READER_LINE, chatId);
    await collected(generation);
  });

  test('while a title is being made for the chat, the ended reply it is made from is not held', async () => {
    await start({ configToml: '[chat]\ngenerate_titles = true\n' });
    const chatId = randomUUID();
    // The title request gets no answer: it lasts as long as the test.
    upstream.enqueue({ kind: 'stream', content: ['A ', 'reply'], firstFrameDelayMs: 300 }, { kind: 'stream', content: [], ending: 'stall' });
    const stream = await openChatStream(service.url, userTurn(chatId, 'Hello'));
    connections.push(stream);
    const generation = await weakGeneration(chatId);
    await stream.readToEnd();
    await eventually(() => (upstream.requests.length === 2 ? true : undefined));

    await collected(generation);
    expect(upstream.activeStreams()).toBe(1);
  });
});

/** The chat's running generation, held weakly (no frame of this test keeps it). */
async function weakGeneration(chatId: string) {
  for (;;) {
    const generation = await service.chat.activeGeneration(chatId, 'local');
    if (generation) return new WeakRef(generation);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves once `reference`'s target has been garbage-collected; fails after a few seconds of trying. */
async function collected(reference: WeakRef<object>): Promise<void> {
  const collect = exposeGc();
  await eventually(() => {
    collect();
    return reference.deref() === undefined ? true : undefined;
  });
}

/** V8's full garbage collection, without starting the whole suite with --expose-gc. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  return gc;
}

describe('open streams per API key', () => {
  /** Starts a turn as `key` and returns once its first text delta has arrived. */
  async function openTurn(chatId: string, key: string) {
    const connection = await openSse(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(key) },
      body: JSON.stringify(userTurn(chatId, 'Stream please')),
    });
    connections.push(connection);
    await connection.readUntil((text) => text.includes('"delta"'));
    return connection;
  }

  async function resume(chatId: string, key: string) {
    const connection = await openSse(`${service.url}/api/chat/${chatId}/stream`, { headers: bearer(key) });
    connections.push(connection);
    return connection;
  }

  function rowCounts() {
    return service.query('SELECT (SELECT COUNT(*) FROM Chat) AS chats, (SELECT COUNT(*) FROM Message) AS messages');
  }

  /** Status, Retry-After and JSON body of a refusal; a stream accepted instead is not read (it would not end). */
  async function answerOf(response: Response) {
    const json = response.headers.get('content-type')?.startsWith('application/json');
    const body: unknown = json ? await response.json() : await response.body?.cancel();
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body };
  }

  const refusal = (max: number) => ({
    error: { code: 'rate_limited', message: `Too many event streams are open for this API key (at most ${max}); close one first.` },
  });

  test('the stream after max_open_streams gets 429 rate_limited with Retry-After, before anything is stored or sent upstream; other keys are not affected', async () => {
    await start({ auth: true, configToml: '[limits]\nmax_open_streams = 2\n' });
    upstream.enqueue({ kind: 'stream', content: ['One'], ending: 'stall', cutAfter: 1 }, { kind: 'stream', content: ['Two'], ending: 'stall', cutAfter: 1 });
    const first = randomUUID();
    await openTurn(first, alice);
    await openTurn(randomUUID(), alice);
    const rowsBefore = await rowCounts();

    const third = await fetch(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(alice) },
      body: JSON.stringify(userTurn(randomUUID(), 'One more')),
    });
    expect(await answerOf(third)).toEqual({ status: 429, retryAfter: '1', body: refusal(2) });
    const resumed = await fetch(`${service.url}/api/chat/${first}/stream`, { headers: bearer(alice) });
    expect(await answerOf(resumed)).toEqual({ status: 429, retryAfter: '1', body: refusal(2) });
    expect(upstream.requests).toHaveLength(2);
    expect(await rowCounts()).toEqual(rowsBefore);

    expect((await postChat(service.url, userTurn(randomUUID(), 'Hello'), bearer(bob))).status).toBe(200);
  });

  test('resumes count, one answered 204 does not, and closing a stream frees its slot; the default is 4 × concurrent_streams', async () => {
    await start({ auth: true, configToml: '[limits]\nconcurrent_streams = 1\n' });
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
    await openTurn(chatId, alice);
    const resumes = [await resume(chatId, alice), await resume(chatId, alice), await resume(chatId, alice)];
    expect(resumes.map((connection) => connection.response.status)).toEqual([200, 200, 200]);

    const fifth = await fetch(`${service.url}/api/chat/${chatId}/stream`, { headers: bearer(alice) });
    expect(await answerOf(fifth)).toEqual({ status: 429, retryAfter: '1', body: refusal(4) });
    const post = await postChat(service.url, userTurn(randomUUID(), 'Another'), bearer(alice));
    expect({ status: post.status, body: post.json() }).toEqual({ status: 429, body: refusal(4) });
    // Nothing to resume: 204, not 429.
    expect((await fetch(`${service.url}/api/chat/${randomUUID()}/stream`, { headers: bearer(alice) })).status).toBe(204);

    resumes[0]!.hangUp();
    await waitForClose(`/api/chat/${chatId}/stream`);
    expect((await resume(chatId, alice)).response.status).toBe(200);
  });

  test('an ended reply its reader has not taken holds its slot until the reader is disconnected', async () => {
    await start({ auth: true, configToml: '[limits]\nmax_open_streams = 1\n[streaming]\nslow_reader_timeout_seconds = 2\n' });
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: largeReply() });
    await postUnread(chatId, bearer(alice));
    await waitForLog('reply ended', chatId);

    const refused = await postChat(service.url, userTurn(randomUUID(), 'Next'), bearer(alice));
    expect({ status: refused.status, body: refused.status === 429 ? refused.json() : refused.text.slice(0, 40) }).toEqual({ status: 429, body: refusal(1) });

    await waitForLog(SLOW_READER_LINE, chatId);
    await waitForClose('/api/chat');
    expect((await postChat(service.url, userTurn(randomUUID(), 'Next'), bearer(alice))).status).toBe(200);
  });

  test('with auth off there are no keys, and no open-stream limit', async () => {
    await start({ configToml: '[limits]\nmax_open_streams = 1\n' });
    upstream.enqueue({ kind: 'stream', content: ['One'], ending: 'stall', cutAfter: 1 }, { kind: 'stream', content: ['Two'], ending: 'stall', cutAfter: 1 });
    const first = await openSse(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(userTurn(randomUUID(), 'One')),
    });
    connections.push(first);
    const second = await openSse(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(userTurn(randomUUID(), 'Two')),
    });
    connections.push(second);
    expect([first.response.status, second.response.status]).toEqual([200, 200]);
  });
});
