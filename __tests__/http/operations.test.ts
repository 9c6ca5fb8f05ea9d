import { randomUUID } from 'node:crypto';
import { ServerResponse } from 'node:http';
import request from 'supertest';
import { eventually, getPath, openChatStream, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { rebuildText } from '../support/sse';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;

beforeEach(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream });
});

afterEach(async () => {
  await service.close();
  await upstream.close();
});

/** Starts a turn and returns once the first text delta has arrived. */
async function openStream(chatId: string) {
  const connection = await openChatStream(service.url, userTurn(chatId, 'Tell me a long story'));
  await connection.readUntil((text) => text.includes('"text-delta"'));
  return connection;
}

describe('client disconnect', () => {
  test('with no resume grace, stops the upstream within a second and keeps the partial reply as interrupted', async () => {
    await service.close();
    service = await startTestService({ upstream, configToml: '[streaming]\nresume_grace_seconds = 0\n' });
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Once ', 'upon ', 'a time'], ending: 'stall', cutAfter: 1 });
    const stream = await openStream(chatId);
    expect(stream.response.status).toBe(200);

    const hungUpAt = Date.now();
    stream.hangUp();
    const upstreamClosedAt = await upstream.clientGone(0);
    expect(upstreamClosedAt - hungUpAt).toBeLessThan(1000);

    const reply = await eventually(async () => {
      const [row] = await service.query<{ content: string; status: string }>(
        "SELECT content, status FROM Message WHERE chatId = ? AND role = 'assistant' AND status != 'streaming'",
        chatId,
      );
      return row;
    });
    expect(reply).toEqual({ content: 'Once ', status: 'interrupted' });
  });
});

describe('backpressure', () => {
  /** Streams about 3 MB, far more than the socket buffers hold, to a reader that first pauses. */
  async function streamLargeReplyToPausedReader(): Promise<void> {
    const chatId = randomUUID();
    const content = Array.from({ length: 600 }, (_, index) => `${String(index).padStart(4, '0')}:${'é✓ '.repeat(1200)}\n`);
    upstream.enqueue({ kind: 'stream', content });
    const response = await fetch(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(userTurn(chatId, 'Write a lot')),
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const text = await response.text();
    expect(rebuildText(text)).toBe(content.join(''));
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  }

  test('a reader that pauses still gets every byte of a large reply, in order', async () => {
    await streamLargeReplyToPausedReader();
  });

  test("the reply still arrives whole when Node loses a response's 'drain' event", async () => {
    // Node 24.22+ and 26.9+ can skip 'drain' once the socket has emptied (nodejs/node#62936); here
    // every 'drain' of every response in this process is lost, on whatever Node runs the test.
    const emit = ServerResponse.prototype.emit;
    let lost = 0;
    ServerResponse.prototype.emit = function (this: ServerResponse, event: string | symbol, ...args: unknown[]) {
      if (event === 'drain') {
        lost += 1;
        return false;
      }
      return emit.call(this, event, ...args);
    } as typeof emit;
    try {
      await streamLargeReplyToPausedReader();
    } finally {
      ServerResponse.prototype.emit = emit;
    }
    expect(lost).toBeGreaterThan(0);
  });
});

describe('one turn at a time per chat', () => {
  test('a second turn while the first streams gets 409 and stores nothing', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Busy'], ending: 'stall', cutAfter: 1 });
    const first = await openStream(chatId);
    const rowsBefore = await service.query('SELECT id FROM Message');

    const second = await postChat(service.url, userTurn(chatId, 'Me too'));

    expect(second.status).toBe(409);
    expect(second.json().error.code).toBe('generation_in_progress');
    expect(await service.query('SELECT id FROM Message')).toEqual(rowsBefore);
    expect(upstream.requests).toHaveLength(1);
    first.hangUp();
  });

  test('other chats are not blocked', async () => {
    upstream.enqueue({ kind: 'stream', content: ['Busy'], ending: 'stall', cutAfter: 1 });
    const first = await openStream(randomUUID());
    const other = await postChat(service.url, userTurn(randomUUID(), 'Hello'));
    expect(other.status).toBe(200);
    first.hangUp();
  });
});

describe('health', () => {
  // Plain JSON routes read well through supertest, straight against the Express app.
  test('/healthz names the provider and /readyz checks the database', async () => {
    const health = await request(service.app).get('/healthz').expect(200).expect('content-type', 'application/json; charset=utf-8');
    expect(health.body).toEqual({ status: 'ok', provider: 'azure-openai', model: upstream.deployment, simulated: false, uptimeSeconds: expect.any(Number) });
    await request(service.app).get('/readyz').expect(200, { status: 'ready' });

    await service.execute('DROP TABLE Message');
    await service.execute('DROP TABLE Chat');
    await request(service.app)
      .get('/readyz')
      .expect(503, { error: { code: 'service_unavailable', message: 'The database is not reachable.' } });
  });
});

describe('logging', () => {
  test('every line of a request carries its X-Request-Id, which is echoed', async () => {
    const exchange = await postChat(service.url, userTurn(randomUUID(), 'Hi'), { 'x-request-id': 'trace-42' });
    expect(exchange.headers.get('x-request-id')).toBe('trace-42');
    const lines = service.logs.map((line) => JSON.parse(line)).filter((line) => line.requestId === 'trace-42');
    expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['upstream context', 'reply ended', 'request completed']));
  });

  test('a missing or unusable X-Request-Id is replaced by a fresh one', async () => {
    const exchange = await postChat(service.url, userTurn(randomUUID(), 'Hi'), { 'x-request-id': 'bad id\twith junk' });
    expect(exchange.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('logs hold no message content, keys or authorization headers by default', async () => {
    await postChat(service.url, userTurn(randomUUID(), 'my secret question', 'secret system prompt'), {
      authorization: 'Bearer client-token-123',
      'api-key': 'client-key-456',
    });
    const text = service.logs.join('\n');
    expect(text).toContain('upstream context');
    for (const secret of ['my secret question', 'secret system prompt', 'Hello world', 'client-token-123', 'client-key-456', upstream.apiKey]) {
      expect(text).not.toContain(secret);
    }
  });

  test('log_content logs the context at debug', async () => {
    const verbose = await startTestService({ upstream, configToml: '[logging]\nlog_content = true\n' });
    try {
      await postChat(verbose.url, userTurn(randomUUID(), 'visible question'));
      const context = verbose.logs.map((line) => JSON.parse(line)).find((line) => line.msg === 'upstream context');
      expect(context.level).toBe(20);
      expect(context.context.messages).toEqual([
        { role: 'system', length: 28, content: 'You are a helpful assistant.' },
        { role: 'user', length: 16, content: 'visible question' },
      ]);
    } finally {
      await verbose.close();
    }
  });
});

describe('shutdown', () => {
  test('a running reply is persisted as interrupted and new turns are refused', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Half'], ending: 'stall', cutAfter: 1 });
    const stream = await openStream(chatId);
    await service.chat.shutdown();
    const rest = await stream.readToEnd();
    expect(rest).toMatch(/data: \{"type":"text-end","id":"text-0"\}\n\nid: \d+\ndata: \{"type":"abort","reason":"shutdown"\}\n\nid: \d+\ndata: \[DONE\]\n\n$/);
    expect(await service.query("SELECT content, status FROM Message WHERE role = 'assistant'")).toEqual([{ content: 'Half', status: 'interrupted' }]);
    const refused = await postChat(service.url, userTurn(randomUUID(), 'Hi'));
    expect(refused.status).toBe(503);
    expect(refused.json().error.code).toBe('service_unavailable');
  });
});
