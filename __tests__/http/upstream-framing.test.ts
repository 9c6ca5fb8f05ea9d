import { randomUUID } from 'node:crypto';
import { postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

/** How the service reads the upstream's event stream at its edges: how long a line or event it takes. */

let upstream: FakeUpstream;
let service: TestService;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream });
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

function replyOf(target: TestService, chatId: string): ReplyRow {
  const [row] = target.query<ReplyRow>(
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

describe('an upstream line or event longer than [openai] max_event_bytes', () => {
  test('a line over the default 1 MiB fails the reply with upstream_error at once, and the body is dropped', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'flood', text: 'x', bytes: 16 * 1024 * 1024 });

    const exchange = await postChat(service.url, userTurn(chatId, 'Hello'));

    const reply = replyOf(service, chatId);
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

      const reply = replyOf(strict, chatId);
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
      expect(replyOf(strict, chatId)).toMatchObject({ content: `Start ${long}`, status: 'completed', finishReason: 'stop' });
    });
  });
});
