import { randomUUID } from 'node:crypto';
import { eventually, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { connectUnread, parseResponse, type UnreadConnection } from '../support/raw-http';
import { rebuildText } from '../support/sse';
import { startTestService, type TestService, type TestServiceOptions } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;
const connections: UnreadConnection[] = [];

async function start(options: TestServiceOptions = {}) {
  service = await startTestService({ upstream, ...options });
}

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  for (const connection of connections.splice(0)) connection.destroy();
  await service.close();
  await upstream.close();
});

const SLOW_READER_LINE = 'slow reader disconnected: the reply had ended and it had not taken the rest';
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

/** The end of a chunked response that closed its stream normally. */
const WHOLE_STREAM_END = 'data: [DONE]\n\n\r\n0\r\n\r\n';

function storedReply(chatId: string) {
  return eventually(() => {
    const [row] = service.query<{ content: string; status: string }>(
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
