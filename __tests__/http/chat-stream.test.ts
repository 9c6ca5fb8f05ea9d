import { randomUUID } from 'node:crypto';
import { DefaultChatTransport, readUIMessageStream, type UIMessage } from 'ai';
import { getPath, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { parseParts, rebuildText } from '../support/sse';
import { describeEachEngine } from '../support/test-engines';
import { startTestService, type TestService } from '../support/test-service';

const DEFAULT_PROMPT = 'You are a helpful assistant.';

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

interface MessageRow {
  role: string;
  content: string;
  status: string;
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
}

function messageRows(chatId: string): Promise<MessageRow[]> {
  return service.query<MessageRow>(
    'SELECT "role", "content", "status", "finishReason", "promptTokens", "completionTokens" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"',
    chatId,
  );
}

describeEachEngine((engine) => {
  describe('POST /api/chat', () => {
    test('streams the reply as exact UI message stream frames and persists both messages', async () => {
      const chatId = randomUUID();
      const content = ['Hi', ' there\n\n', 'data: x\r\n', 'é 😀 中文\u2028 👩‍👩‍👧 e\u0301 end'];
      upstream.enqueue({ kind: 'stream', content, usage: { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 } });

      const exchange = await postChat(service.url, userTurn(chatId, 'Hello'));

      expect(exchange.status).toBe(200);
      expect(exchange.headers.get('content-type')).toBe('text/event-stream');
      expect(exchange.headers.get('cache-control')).toBe('no-cache, no-transform');
      expect(exchange.headers.get('x-accel-buffering')).toBe('no');
      expect(exchange.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
      expect(exchange.headers.get('content-encoding')).toBeNull();
      const [assistant] = await service.query<{ id: string; timeToFirstTokenMs: number; durationMs: number }>(
        `SELECT "id", "timeToFirstTokenMs", "durationMs" FROM "Message" WHERE "role" = 'assistant'`,
      );
      const { timeToFirstTokenMs, durationMs } = assistant!;
      expect(timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
      expect(durationMs).toBeGreaterThanOrEqual(timeToFirstTokenMs);
      expect(exchange.text).toBe(
        // Prompt tokens (o200k_base): system prompt 6 + "Hello" 1, plus 4 per message and 3 for the reply.
        `id: 1\ndata: {"type":"start","messageId":"${assistant!.id}","messageMetadata":{"contextMessages":2,"droppedMessages":0,"promptTokensEstimate":18}}\n\n` +
          'id: 2\ndata: {"type":"text-start","id":"text-0"}\n\n' +
          'id: 3\ndata: {"type":"text-delta","id":"text-0","delta":"Hi"}\n\n' +
          'id: 4\ndata: {"type":"text-delta","id":"text-0","delta":" there\\n\\n"}\n\n' +
          'id: 5\ndata: {"type":"text-delta","id":"text-0","delta":"data: x\\r\\n"}\n\n' +
          'id: 6\ndata: {"type":"text-delta","id":"text-0","delta":"é 😀 中文\u2028 👩‍👩‍👧 e\u0301 end"}\n\n' +
          'id: 7\ndata: {"type":"text-end","id":"text-0"}\n\n' +
          'id: 8\ndata: {"type":"finish","finishReason":"stop","messageMetadata":{"usage":{"promptTokens":12,"completionTokens":4,"totalTokens":16},' +
          `"usageEstimated":false,"model":"gpt-4o","timeToFirstTokenMs":${timeToFirstTokenMs},"durationMs":${durationMs}}}\n\n` +
          'id: 9\ndata: [DONE]\n\n',
      );
      expect(rebuildText(exchange.text)).toBe(content.join(''));

      expect(await messageRows(chatId)).toEqual([
        { role: 'user', content: 'Hello', status: 'completed', finishReason: null, promptTokens: null, completionTokens: null },
        { role: 'assistant', content: content.join(''), status: 'completed', finishReason: 'stop', promptTokens: 12, completionTokens: 4 },
      ]);
      expect(await service.query('SELECT "id", "systemPrompt" FROM "Chat"')).toEqual([{ id: chatId, systemPrompt: null }]);

      expect(upstream.requests).toHaveLength(1);
      const [sent] = upstream.requests;
      expect(sent!.body.max_tokens).toBe(4096);
      delete sent!.body.max_tokens;
      expect(sent!.method).toBe('POST');
      expect(sent!.path).toBe('/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21');
      expect(sent!.headers['api-key']).toBe(upstream.apiKey);
      expect(sent!.body).toEqual({
        model: 'gpt-4o',
        messages: [
          { role: 'system', content: DEFAULT_PROMPT },
          { role: 'user', content: 'Hello' },
        ],
        temperature: 0.7,
        stream: true,
        stream_options: { include_usage: true },
      });
    });

    // PostgreSQL's text cannot hold U+0000: the provider's text is made storable on every engine
    // before it is streamed, so that the stream and the stored reply agree.
    test('a reply holding U+0000 is streamed and stored with U+FFFD in its place', async () => {
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['a\u0000b', '\u0000'] });
      const exchange = await postChat(service.url, userTurn(chatId, 'Hello'));
      expect(exchange.text).toContain('id: 3\ndata: {"type":"text-delta","id":"text-0","delta":"a\uFFFDb"}\n\n');
      expect(rebuildText(exchange.text)).toBe('a\uFFFDb\uFFFD');
      expect(await service.query(`SELECT "content", "status" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"`, chatId)).toEqual([
        { content: 'Hello', status: 'completed' },
        { content: 'a\uFFFDb\uFFFD', status: 'completed' },
      ]);
    });

    test('is parsed by the AI SDK client transport into the same message', async () => {
      const chatId = randomUUID();
      const content = ['Line one\n', 'data: [DONE]\n\n', 'naïve ☃'];
      upstream.enqueue({ kind: 'stream', content, usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 } });
      const transport = new DefaultChatTransport<UIMessage>({
        api: `${service.url}/api/chat`,
        // The service keeps the history, so only the new turn is sent.
        prepareSendMessagesRequest: ({ id, messages }) => {
          const last = messages[messages.length - 1]!;
          const text = last.parts.map((part) => (part.type === 'text' ? part.text : '')).join('');
          return { body: { chatId: id, messages: [{ role: 'user', content: text }] } };
        },
      });

      const stream = await transport.sendMessages({
        chatId,
        messages: [{ id: 'local-1', role: 'user', parts: [{ type: 'text', text: 'Hello SDK' }] }],
        trigger: 'submit-message',
        messageId: undefined,
        abortSignal: undefined,
      });
      let message: UIMessage | undefined;
      for await (const update of readUIMessageStream({ stream, terminateOnError: true })) message = update;

      const [assistant] = await service.query<{ id: string }>(`SELECT "id" FROM "Message" WHERE "role" = 'assistant'`);
      expect(message).toEqual({
        id: assistant!.id,
        role: 'assistant',
        metadata: {
          contextMessages: 2,
          droppedMessages: 0,
          promptTokensEstimate: 19,
          usage: { promptTokens: 5, completionTokens: 3, totalTokens: 8 },
          usageEstimated: false,
          model: 'gpt-4o',
          timeToFirstTokenMs: expect.any(Number),
          durationMs: expect.any(Number),
        },
        parts: [{ type: 'text', text: content.join(''), state: 'done' }],
      });
    });

    test('sends the history back in order and lets it grow', async () => {
      const chatId = randomUUID();
      upstream.enqueue(
        { kind: 'stream', content: ['A1'] },
        { kind: 'stream', content: ['A2'] },
        { kind: 'stream', content: ['A3'] },
      );
      for (const question of ['Q1', 'Q2', 'Q3']) {
        expect((await postChat(service.url, userTurn(chatId, question))).status).toBe(200);
      }

      expect(upstream.requests.map((request) => request.body.messages)).toEqual([
        [{ role: 'system', content: DEFAULT_PROMPT }, { role: 'user', content: 'Q1' }],
        [
          { role: 'system', content: DEFAULT_PROMPT },
          { role: 'user', content: 'Q1' },
          { role: 'assistant', content: 'A1' },
          { role: 'user', content: 'Q2' },
        ],
        [
          { role: 'system', content: DEFAULT_PROMPT },
          { role: 'user', content: 'Q1' },
          { role: 'assistant', content: 'A1' },
          { role: 'user', content: 'Q2' },
          { role: 'assistant', content: 'A2' },
          { role: 'user', content: 'Q3' },
        ],
      ]);

      const history = await getPath(service.url, `/api/chats/${chatId}/messages`);
      expect(history.status).toBe(200);
      const body = history.json();
      expect(body.chatId).toBe(chatId);
      expect(body.messages.map((message: { role: string; content: string; status: string }) => [message.role, message.content, message.status])).toEqual([
        ['user', 'Q1', 'completed'],
        ['assistant', 'A1', 'completed'],
        ['user', 'Q2', 'completed'],
        ['assistant', 'A2', 'completed'],
        ['user', 'Q3', 'completed'],
        ['assistant', 'A3', 'completed'],
      ]);
      const ids = (await service.query<{ id: string }>('SELECT "id" FROM "Message" ORDER BY "seq"')).map((row) => row.id);
      expect(body.messages.map((message: { id: string }) => message.id)).toEqual(ids);
      for (const message of body.messages) {
        expect(Object.keys(message).sort()).toEqual([
          'content',
          'createdAt',
          'durationMs',
          'finishReason',
          'id',
          'model',
          'role',
          'status',
          'systemPromptHash',
          'timeToFirstTokenMs',
          'usage',
          'usageEstimated',
        ]);
        expect(new Date(message.createdAt).toISOString()).toBe(message.createdAt);
      }
    });

    test('keeps the order of messages whose timestamps tie', async () => {
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['A1'] }, { kind: 'stream', content: ['A2'] }, { kind: 'stream', content: ['A3'] });
      await postChat(service.url, userTurn(chatId, 'Q1'));
      await postChat(service.url, userTurn(chatId, 'Q2'));
      await service.execute('UPDATE "Message" SET "createdAt" = (SELECT MAX("createdAt") FROM "Message")');

      await postChat(service.url, userTurn(chatId, 'Q3'));

      expect(upstream.requests[2]!.body.messages.slice(1)).toEqual([
        { role: 'user', content: 'Q1' },
        { role: 'assistant', content: 'A1' },
        { role: 'user', content: 'Q2' },
        { role: 'assistant', content: 'A2' },
        { role: 'user', content: 'Q3' },
      ]);
      const history = (await getPath(service.url, `/api/chats/${chatId}/messages`)).json();
      expect(history.messages.map((message: { content: string }) => message.content)).toEqual(['Q1', 'A1', 'Q2', 'A2', 'Q3', 'A3']);
    });

    test('uses the system prompt from the request, keeps it for the chat, and lets the latest win', async () => {
      const chatId = randomUUID();
      await postChat(service.url, userTurn(chatId, 'Ahoy?', 'You are a pirate.'));
      await postChat(service.url, userTurn(chatId, 'And now?'));
      await postChat(service.url, userTurn(chatId, 'Rhyme?', 'You are a poet.'));
      await postChat(service.url, userTurn(randomUUID(), 'Other chat'));

      expect(upstream.requests.map((request) => request.body.messages[0])).toEqual([
        { role: 'system', content: 'You are a pirate.' },
        { role: 'system', content: 'You are a pirate.' },
        { role: 'system', content: 'You are a poet.' },
        { role: 'system', content: DEFAULT_PROMPT },
      ]);
      expect(await service.query('SELECT "systemPrompt" FROM "Chat" WHERE "id" = ?', chatId)).toEqual([{ systemPrompt: 'You are a poet.' }]);
      // The system prompt is the chat's setting, not a message of its history.
      expect((await messageRows(chatId)).map((row) => row.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    });

    test('streams the simulator reply when no provider is configured', async () => {
      const simulated = await startTestService({ configToml: '[simulator]\ndelay_ms = 1\n' });
      try {
        const chatId = randomUUID();
        const exchange = await postChat(simulated.url, userTurn(chatId, 'Hello simulator'));
        expect(exchange.status).toBe(200);
        const text = rebuildText(exchange.text);
        expect(text).toContain('[simulator] You said: "Hello simulator".');
        expect(parseParts(exchange.text).at(-1)).toMatchObject({ type: 'finish', finishReason: 'stop' });
        const again = await postChat(simulated.url, userTurn(randomUUID(), 'Hello simulator'));
        expect(rebuildText(again.text)).toBe(text);
        expect((await getPath(simulated.url, '/healthz')).json()).toMatchObject({ provider: 'simulator', simulated: true });
      } finally {
        await simulated.close();
      }
    });
  });

  describe('context window', () => {
    test('sends only the last max_conversation_pairs pairs set in the CONFIG_PATH file', async () => {
      const limited = await startTestService({ upstream, configToml: '[chat]\nmax_conversation_pairs = 2\n' });
      try {
        const chatId = randomUUID();
        for (const number of [1, 2, 3, 4]) {
          upstream.enqueue({ kind: 'stream', content: [`A${number}`] });
          await postChat(limited.url, userTurn(chatId, `Q${number}`));
        }
        expect(upstream.requests.at(-1)!.body.messages).toEqual([
          { role: 'system', content: DEFAULT_PROMPT },
          { role: 'user', content: 'Q2' },
          { role: 'assistant', content: 'A2' },
          { role: 'user', content: 'Q3' },
          { role: 'assistant', content: 'A3' },
          { role: 'user', content: 'Q4' },
        ]);
      } finally {
        await limited.close();
      }
    });
  });

  describe('providers', () => {
    test('talks to an OpenAI-compatible server with a bearer key', async () => {
      const compatible = await startTestService({
        environment: { OPENAI_API_KEY: upstream.apiKey, OPENAI_BASE_URL: `${upstream.url}/v1`, OPENAI_MODEL: 'llama3.2' },
      });
      try {
        const exchange = await postChat(compatible.url, userTurn(randomUUID(), 'Hi'));
        expect(rebuildText(exchange.text)).toBe('Hello world');
        expect(upstream.requests[0]!.path).toBe('/v1/chat/completions');
        expect(upstream.requests[0]!.headers.authorization).toBe(`Bearer ${upstream.apiKey}`);
        expect(upstream.requests[0]!.body.model).toBe('llama3.2');
        expect((await getPath(compatible.url, '/healthz')).json()).toMatchObject({ provider: 'openai', model: 'llama3.2' });
      } finally {
        await compatible.close();
      }
    });

    test('talks to the Azure v1 data plane when the endpoint ends in /openai/v1', async () => {
      const v1 = await startTestService({
        environment: {
          AZURE_OPENAI_API_KEY: upstream.apiKey,
          AZURE_OPENAI_ENDPOINT: `${upstream.url}/openai/v1/`,
          AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
        },
      });
      try {
        const exchange = await postChat(v1.url, userTurn(randomUUID(), 'Hi'));
        expect(rebuildText(exchange.text)).toBe('Hello world');
        expect(upstream.requests[0]!.path).toBe('/openai/v1/chat/completions');
        expect(upstream.requests[0]!.body.model).toBe(upstream.deployment);
      } finally {
        await v1.close();
      }
    });
  });

  describe('reasoning models', () => {
    async function withReasoningUpstream(deployment: string, configToml: string, run: (own: TestService, ownUpstream: FakeUpstream) => Promise<void>) {
      const ownUpstream = await startFakeUpstream({ deployment, reasoningModel: true });
      const own = await startTestService({ upstream: ownUpstream, configToml });
      try {
        await run(own, ownUpstream);
      } finally {
        await own.close();
        await ownUpstream.close();
      }
    }

    test('a deployment named after one gets max_completion_tokens and no temperature', async () => {
      await withReasoningUpstream('o3-mini', '', async (own, ownUpstream) => {
        const exchange = await postChat(own.url, userTurn(randomUUID(), 'Think first'));
        expect(exchange.status).toBe(200);
        expect(rebuildText(exchange.text)).toBe('Hello world');
        expect(ownUpstream.requests.map((request) => request.body)).toEqual([
          {
            model: 'o3-mini',
            messages: [
              { role: 'system', content: DEFAULT_PROMPT },
              { role: 'user', content: 'Think first' },
            ],
            max_completion_tokens: 4096,
            stream: true,
            stream_options: { include_usage: true },
          },
        ]);
      });
    });

    test('reasoning_model = true covers a deployment whose name does not tell; without it the model refuses', async () => {
      await withReasoningUpstream('prod', '', async (own) => {
        const refused = await postChat(own.url, userTurn(randomUUID(), 'Think first'));
        expect(refused.status).toBe(502);
        expect(refused.json()).toMatchObject({ error: { code: 'upstream_error' } });
        // The operator finds the provider's own words in the log (the README's troubleshooting).
        expect(own.logs.join('\n')).toContain("Unsupported parameter: 'max_tokens' is not supported with this model.");
      });
      await withReasoningUpstream('prod', '[openai]\nreasoning_model = true\n', async (own, ownUpstream) => {
        const exchange = await postChat(own.url, userTurn(randomUUID(), 'Think first'));
        expect(exchange.status).toBe(200);
        expect(ownUpstream.requests.at(-1)!.body).toMatchObject({ max_completion_tokens: 4096 });
        expect(ownUpstream.requests.at(-1)!.body).not.toHaveProperty('temperature');
      });
    });
  });
});
