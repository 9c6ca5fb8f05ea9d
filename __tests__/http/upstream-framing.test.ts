import { randomUUID } from 'node:crypto';
import { eventually, getPath, openChatStream, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream, type StreamScript } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

/**
 * How the service reads the upstream's event stream at its edges: where a reply ends when the
 * upstream keeps its connection open, and how long a line or event it takes.
 */

// An idle timeout far above anything measured here, so that a reply held until it fires cannot
// pass for one that ended at once.
const IDLE_TIMEOUT_SECONDS = 30;

let upstream: FakeUpstream;
let service: TestService;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream, configToml: `[streaming]\nupstream_idle_timeout_seconds = ${IDLE_TIMEOUT_SECONDS}\n` });
});

afterAll(async () => {
  await service.close();
  await upstream.close();
});

interface ReplyRow {
  id: string;
  content: string;
  status: string;
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  totalTokens: number | null;
  usageEstimated: boolean | number;
  timeToFirstTokenMs: number | null;
  durationMs: number | null;
}

async function replyOf(target: TestService, chatId: string): Promise<ReplyRow> {
  const [row] = await target.query<ReplyRow>(
    'SELECT id, content, status, finishReason, promptTokens, completionTokens, totalTokens, usageEstimated, timeToFirstTokenMs, durationMs ' +
      "FROM Message WHERE chatId = ? AND role = 'assistant'",
    chatId,
  );
  return row!;
}

/** The SSE text of a reply that failed before its first delta with `errorText`. */
function failedBeforeAnyText(messageId: string, errorText: string): string {
  return (
    `id: 1\ndata: {"type":"start","messageId":"${messageId}","messageMetadata":{"contextMessages":2,"droppedMessages":0,"promptTokensEstimate":18}}\n\n` +
    'id: 2\ndata: {"type":"text-start","id":"text-0"}\n\n' +
    'id: 3\ndata: {"type":"text-end","id":"text-0"}\n\n' +
    `id: 4\ndata: {"type":"error","errorText":"${errorText}"}\n\n` +
    'id: 5\ndata: [DONE]\n\n'
  );
}

/** Log lines at warn level or above written since line `from`. */
function warningsSince(from: number): string[] {
  return service.logs.slice(from).filter((line) => (JSON.parse(line) as { level: number }).level >= 40);
}

describe('an upstream that has ended the reply but keeps its connection open', () => {
  test.each<[string, Partial<StreamScript>]>([
    ['[DONE]', { ending: 'done-then-stall' }],
    ['the usage frame that follows the finish frame', { ending: 'usage-then-stall' }],
    ['a finish frame that carries the usage', { ending: 'usage-then-stall', usageInFinish: true }],
  ])(
    'the reply ends at once after %s: finish and [DONE] reach the client, the reply is stored, and the held body is dropped quietly',
    async (_name, ending) => {
      const chatId = randomUUID();
      const logsBefore = service.logs.length;
      upstream.enqueue({
        kind: 'stream',
        content: ['Quick', ' answer'],
        usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
        ...ending,
      });

      const stream = await openChatStream(service.url, userTurn(chatId, 'Hello'));
      await stream.readUntil((text) => text.includes('"delta":" answer"'));
      const lastDeltaAt = Date.now();
      const text = await stream.readUntil((received) => received.endsWith('data: [DONE]\n\n'));
      const doneAt = Date.now();

      expect(doneAt - lastDeltaAt).toBeLessThan(1000);
      const reply = await replyOf(service, chatId);
      expect(text).toBe(
        `id: 1\ndata: {"type":"start","messageId":"${reply.id}","messageMetadata":{"contextMessages":2,"droppedMessages":0,"promptTokensEstimate":18}}\n\n` +
          'id: 2\ndata: {"type":"text-start","id":"text-0"}\n\n' +
          'id: 3\ndata: {"type":"text-delta","id":"text-0","delta":"Quick"}\n\n' +
          'id: 4\ndata: {"type":"text-delta","id":"text-0","delta":" answer"}\n\n' +
          'id: 5\ndata: {"type":"text-end","id":"text-0"}\n\n' +
          'id: 6\ndata: {"type":"finish","finishReason":"stop","messageMetadata":{"usage":{"promptTokens":9,"completionTokens":2,"totalTokens":11},' +
          `"usageEstimated":false,"model":"gpt-4o","timeToFirstTokenMs":${reply.timeToFirstTokenMs},"durationMs":${reply.durationMs}}}\n\n` +
          'id: 7\ndata: [DONE]\n\n',
      );
      expect(reply).toEqual({
        id: reply.id,
        content: 'Quick answer',
        status: 'completed',
        finishReason: 'stop',
        promptTokens: 9,
        completionTokens: 2,
        totalTokens: 11,
        usageEstimated: 0,
        timeToFirstTokenMs: reply.timeToFirstTokenMs,
        durationMs: reply.durationMs,
      });
      expect(reply.durationMs).toBeLessThan(IDLE_TIMEOUT_SECONDS * 1000);

      // The rest of the body is read briefly in case the upstream ends it, then dropped.
      const goneAt = await upstream.clientGone(upstream.requests.length - 1);
      expect(goneAt - doneAt).toBeLessThan(5000);
      expect(warningsSince(logsBefore)).toEqual([]);
    },
    (IDLE_TIMEOUT_SECONDS + 10) * 1000,
  );

  test('an upstream that ends its body soon after [DONE] keeps its connection for the next reply', async () => {
    // An upstream of its own: the client's pool for the shared one holds connections from the tests above.
    const own = await startFakeUpstream();
    const ownService = await startTestService({ upstream: own });
    try {
      const chatId = randomUUID();
      // The reply ends at [DONE]; the end of the body, a little later, is still read.
      own.enqueue({ kind: 'stream', content: ['One'], endDelayMs: 100 });
      await postChat(ownService.url, userTurn(chatId, 'One'));
      await eventually(() => (own.activeStreams() === 0 ? true : undefined));
      // The end of the body is on its way to the service: one round trip through the service lets
      // it take that end and free the connection before the next turn, not in the same loop turn.
      await getPath(ownService.url, '/healthz');
      await postChat(ownService.url, userTurn(chatId, 'Two'));
      expect(own.requests.map((request) => request.connection)).toEqual([1, 1]);
    } finally {
      await ownService.close();
      await own.close();
    }
  });
});

describe('an upstream answering with a status that has no body', () => {
  test.each([304, 204, 205])('%i fails the turn with 502 upstream_error, and the service goes on', async (status) => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'error', status, body: '' });
    const refused = await postChat(service.url, userTurn(chatId, 'Hello'));
    expect({ status: refused.status, body: refused.json() }).toEqual({
      status: 502,
      body: { error: { code: 'upstream_error', message: status === 304 ? 'The model provider answered with HTTP 304.' : 'The model provider answered with no body.' } },
    });
    upstream.enqueue({ kind: 'stream', content: ['Still', ' here'] });
    expect((await postChat(service.url, userTurn(randomUUID(), 'Again'))).text).toContain('"delta":" here"');
  });
});

describe('an upstream line or event longer than [openai] max_event_bytes', () => {
  test('a line over the default 1 MiB fails the reply with upstream_error at once, and the body is dropped', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'flood', text: 'x', bytes: 16 * 1024 * 1024 });

    const exchange = await postChat(service.url, userTurn(chatId, 'Hello'));

    const reply = await replyOf(service, chatId);
    expect(exchange.text).toBe(failedBeforeAnyText(reply.id, 'The model provider sent an event longer than 1048576 bytes.'));
    expect(reply).toMatchObject({ content: '', status: 'failed', finishReason: 'error' });
    // The fake was still writing when the service went away.
    await upstream.clientGone(upstream.requests.length - 1);
  });

  describe('under a configured smaller limit', () => {
    let strict: TestService;

    beforeAll(async () => {
      strict = await startTestService({ upstream, configToml: '[openai]\nmax_event_bytes = 65536\n' });
    });

    afterAll(async () => {
      await strict.close();
    });

    test.each([
      ['a 16 MiB body with no line end', 'x'],
      ['a 16 MiB event of short data lines with no blank line', `data: ${'x'.repeat(57)}\n`],
    ])('%s fails quickly with upstream_error, the reply stored as failed and the body dropped', async (_name, text) => {
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'flood', text, bytes: 16 * 1024 * 1024 });

      const started = Date.now();
      const exchange = await postChat(strict.url, userTurn(chatId, 'Hello'));
      const elapsed = Date.now() - started;

      const reply = await replyOf(strict, chatId);
      expect(exchange.text).toBe(failedBeforeAnyText(reply.id, 'The model provider sent an event longer than 65536 bytes.'));
      expect(reply).toMatchObject({ content: '', status: 'failed', finishReason: 'error' });
      expect(elapsed).toBeLessThan(1000);
      await upstream.clientGone(upstream.requests.length - 1);
    });

    test('a frame just under the limit is read whole', async () => {
      const chatId = randomUUID();
      const long = 'lorem ipsum '.repeat(5_300);
      upstream.enqueue({ kind: 'stream', content: ['Start ', long] });

      const exchange = await postChat(strict.url, userTurn(chatId, 'Hello'));

      expect(exchange.text).toContain(`"delta":"${long}"`);
      expect(await replyOf(strict, chatId)).toMatchObject({ content: `Start ${long}`, status: 'completed', finishReason: 'stop' });
    });
  });
});
