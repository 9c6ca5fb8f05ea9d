import { randomUUID } from 'node:crypto';
import OpenAI, { APIError, AuthenticationError, BadRequestError, NotFoundError, RateLimitError } from 'openai';
import { eventually, openSse, postChat, userTurn } from '../support/chat-client';
import { azureErrors, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

/**
 * The OpenAI-compatible endpoint (/v1), driven with the real `openai` SDK (and raw fetch where
 * the exact bytes matter) against the whole service, a SQLite file and the fake Azure upstream.
 */

let upstream: FakeUpstream;
let service: TestService;

beforeEach(async () => {
  upstream = await startFakeUpstream();
  // No retries in the service, so that an upstream 429 reaches the client at once.
  service = await startTestService({ upstream, configToml: '[openai]\nmax_retries = 0\n' });
});

afterEach(async () => {
  await service.close();
  await upstream.close();
});

/** The SDK as an app would use it; its own retries are off, so every request is seen once. */
function sdk(target: TestService = service, apiKey = 'unused-with-auth-off'): OpenAI {
  return new OpenAI({ baseURL: `${target.url}/v1`, apiKey, maxRetries: 0 });
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}, target: TestService = service) {
  const response = await fetch(`${target.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

function rowCounts(target: TestService = service) {
  return target.query('SELECT (SELECT COUNT(*) FROM "Chat") AS chats, (SELECT COUNT(*) FROM "Message") AS messages');
}

const NOTHING_STORED = [{ chats: 0, messages: 0 }];

/** What the service sends upstream for a request that asks for nothing but its messages. */
function upstreamBody(messages: unknown[]) {
  return { model: 'gpt-4o', messages, temperature: 0.7, max_tokens: 4096, stream: true, stream_options: { include_usage: true } };
}

function completionLogs(target: TestService = service): Array<Record<string, unknown>> {
  return target.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'completion ended');
}

describe('POST /v1/chat/completions', () => {
  test('streams through the SDK: exact text, the exact upstream request, nothing stored', async () => {
    const content = ['Hi', ' there\n\n', 'data: x\r\n', 'é 😀 中文'];
    upstream.enqueue({ kind: 'stream', content });
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Hello' },
      { role: 'assistant' as const, content: 'Hello! How can I help?' },
      { role: 'user' as const, content: 'Say hi.' },
    ];

    const stream = await sdk().chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')).toBe(content.join(''));
    expect(chunks.map((chunk) => chunk.choices[0]?.finish_reason)).toEqual([null, null, null, null, null, 'stop']);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(new Set(chunks.map((chunk) => `${chunk.id} ${chunk.object} ${chunk.created} ${chunk.model}`)).size).toBe(1);
    expect(chunks[0]!.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(chunks[0]!.model).toBe('gpt-4o');
    // Without include_usage, no chunk has a usage key at all, as OpenAI sends them.
    expect(chunks.every((chunk) => !('usage' in chunk))).toBe(true);
    // Stateless: exactly the caller's messages, no default system prompt, no history.
    expect(upstream.requests.map((request) => request.body)).toEqual([upstreamBody(messages)]);
    expect(upstream.requests[0]!.path).toBe('/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21');
    expect(await rowCounts()).toEqual(NOTHING_STORED);
  });

  test('the stream is OpenAI chat.completion.chunk SSE, byte for byte, with the usage chunk when asked', async () => {
    upstream.enqueue({ kind: 'stream', content: ['Hi', ' "there"\n'], usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 } });
    const exchange = await post('/v1/chat/completions', {
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });

    expect(exchange.status).toBe(200);
    expect(exchange.headers.get('content-type')).toBe('text/event-stream');
    expect(exchange.headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(exchange.headers.get('x-vercel-ai-ui-message-stream')).toBeNull();
    const { id, created } = JSON.parse(exchange.text.slice('data: '.length, exchange.text.indexOf('\n'))) as { id: string; created: number };
    expect(id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(Math.abs(created - Date.now() / 1000)).toBeLessThan(10);
    const head = `{"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"gpt-4o"`;
    expect(exchange.text).toBe(
      `data: ${head},"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
        `data: ${head},"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
        `data: ${head},"choices":[{"index":0,"delta":{"content":" \\"there\\"\\n"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
        `data: ${head},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n` +
        `data: ${head},"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n` +
        'data: [DONE]\n\n',
    );
  });

  test('include_usage through the SDK: a last chunk with no choices and the usage, usage null before it', async () => {
    upstream.enqueue({ kind: 'stream', content: ['One', ' two'], usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } });
    const stream = await sdk().chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Count' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
    expect(chunks.slice(0, -1).map((chunk) => chunk.usage)).toEqual([null, null, null, null]);
    expect(chunks.slice(0, -1).map((chunk) => chunk.choices[0]!.delta.content ?? '').join('')).toBe('One two');
  });

  test('without stream: one chat.completion with the message, finish_reason and usage; the usage is logged', async () => {
    upstream.enqueue({ kind: 'stream', content: ['The answer', ' is 42.'], finishReason: 'length', usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 } });
    const completion = await sdk().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Question?' }] });

    expect(completion).toEqual({
      id: expect.stringMatching(/^chatcmpl-[0-9a-f]{32}$/),
      object: 'chat.completion',
      created: expect.any(Number),
      model: 'gpt-4o',
      choices: [{ index: 0, message: { role: 'assistant', content: 'The answer is 42.' }, logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 },
    });
    // The upstream is always streamed: the service's retries, timeouts and idle checks apply alike.
    expect(upstream.requests.map((request) => request.body)).toEqual([upstreamBody([{ role: 'user', content: 'Question?' }])]);
    expect(await rowCounts()).toEqual(NOTHING_STORED);
    const [logged] = await eventually(() => (completionLogs().length > 0 ? completionLogs() : undefined));
    expect(logged).toMatchObject({
      level: 30,
      completionId: completion.id,
      status: 'completed',
      finishReason: 'length',
      usage: { promptTokens: 9, completionTokens: 5, totalTokens: 14 },
      characters: 'The answer is 42.'.length,
    });
  });

  /** The sampling settings a client may choose, passed upstream as they are. */
  const SAMPLING = { temperature: 0.2, top_p: 0.9, presence_penalty: 0.5, frequency_penalty: -0.5, stop: ['\n\n', 'END'], seed: 42, user: 'end-user-7' };

  test('passes max_tokens, temperature, the other sampling settings, text parts (joined) and developer messages (as system) on', async () => {
    upstream.enqueue({ kind: 'stream', content: ['ok'] });
    const exchange = await post('/v1/chat/completions', {
      messages: [
        { role: 'developer', content: 'Answer in French.' },
        { role: 'user', content: [{ type: 'text', text: 'Hel' }, { type: 'text', text: 'lo' }] },
      ],
      max_completion_tokens: 100,
      ...SAMPLING,
      // Values that ask for nothing beyond what the service does are accepted.
      n: 1,
      store: false,
      logprobs: false,
      modalities: ['text'],
      response_format: { type: 'text' },
      tools: null,
    });
    expect(exchange.status).toBe(200);
    expect(exchange.json().choices[0].message.content).toBe('ok');
    expect(upstream.requests.map((request) => request.body)).toEqual([
      {
        ...upstreamBody([
          { role: 'system', content: 'Answer in French.' },
          { role: 'user', content: 'Hello' },
        ]),
        ...SAMPLING,
        max_tokens: 100,
      },
    ]);
  });

  test('an upstream 429 reaches the SDK as a RateLimitError, with Retry-After', async () => {
    upstream.enqueue(azureErrors.rateLimited(7, 7000));
    const error = await sdk()
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true })
      .then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(RateLimitError);
    const rateLimit = error as RateLimitError;
    expect(rateLimit.status).toBe(429);
    expect(rateLimit.headers.get('retry-after')).toBe('7');
    expect(rateLimit.error).toEqual({
      message: 'The model provider is rate limiting requests; retry later.',
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    });
    expect(upstream.requests).toHaveLength(1);
  });

  test.each<[string, number, string, () => Parameters<FakeUpstream['enqueue']>[0]]>([
    ['500', 502, 'upstream_error', () => azureErrors.serverError(500)],
    ['context overflow', 400, 'context_length_exceeded', () => azureErrors.contextLengthExceeded()],
    ['content filter', 400, 'content_filter', () => azureErrors.contentFilter()],
  ])('an upstream %s answers %d %s in OpenAI shape', async (_name, status, code, script) => {
    upstream.enqueue(script());
    const exchange = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }] });
    expect(exchange.status).toBe(status);
    expect(exchange.json()).toEqual({
      error: { message: expect.any(String), type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code },
    });
  });

  test('an upstream failure after the first token ends the stream with an error frame, which the SDK throws', async () => {
    upstream.enqueue({ kind: 'stream', content: ['Partial ', 'reply'], ending: 'reset', cutAfter: 1 });
    const exchange = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], stream: true });
    expect(exchange.status).toBe(200);
    expect(exchange.text).toMatch(/"delta":\{"content":"Partial "\}/);
    expect(exchange.text.endsWith('data: {"error":{"message":"The model provider\'s response broke off.","type":"server_error","param":null,"code":"upstream_error"}}\n\n')).toBe(true);
    expect(exchange.text).not.toContain('[DONE]');

    upstream.enqueue({ kind: 'stream', content: ['Partial ', 'reply'], ending: 'reset', cutAfter: 1 });
    const stream = await sdk().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    const received: string[] = [];
    const failure = await (async () => {
      for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? '');
    })().then(() => undefined, (caught: unknown) => caught);
    expect(failure).toBeInstanceOf(APIError);
    expect((failure as APIError).message).toBe("The model provider's response broke off.");
    expect(received.join('')).toBe('Partial ');
  });

  test('model omitted or the configured one is served; another model gets 404 model_not_found and no upstream call', async () => {
    expect((await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }] })).status).toBe(200);
    const error = await sdk()
      .chat.completions.create({ model: 'gpt-5-turbo', messages: [{ role: 'user', content: 'Hi' }] })
      .then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).error).toEqual({
      message: 'The model `gpt-5-turbo` does not exist or you do not have access to it.',
      type: 'invalid_request_error',
      param: null,
      code: 'model_not_found',
    });
    expect(upstream.requests).toHaveLength(1);
  });

  const user = { role: 'user', content: 'Hi' };
  test.each<[string, Record<string, unknown>, string, string, string | null]>([
    ['tools', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools', 'tools (function calling) are not supported by this service.', 'unsupported_parameter'],
    ['tool_choice', { tool_choice: 'auto' }, 'tool_choice', 'tool_choice is not supported: this service takes no tools.', 'unsupported_parameter'],
    ['JSON mode', { response_format: { type: 'json_object' } }, 'response_format', 'response_format is not supported: this service answers plain text (no JSON mode, no structured outputs).', 'unsupported_parameter'],
    ['n > 1', { n: 2 }, 'n', 'n must be 1: this service generates one choice per request.', 'unsupported_parameter'],
    ['audio output', { audio: { voice: 'alloy', format: 'wav' } }, 'audio', 'audio output is not supported by this service.', 'unsupported_parameter'],
    ['audio modality', { modalities: ['text', 'audio'] }, 'modalities', 'modalities may only be ["text"]: this service answers text only.', 'unsupported_parameter'],
    ['logprobs', { logprobs: true }, 'logprobs', 'logprobs are not supported by this service.', 'unsupported_parameter'],
    ['store', { store: true }, 'store', 'store is not supported: this endpoint stores nothing.', 'unsupported_parameter'],
    ['any other field', { logit_bias: { '50256': -100 } }, 'logit_bias', 'logit_bias is not supported by this service.', 'unsupported_parameter'],
    ['a top_p out of range', { top_p: 1.5 }, 'top_p', "Invalid 'top_p': must be a number from 0 to 1.", null],
    ['five stop sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', "Invalid 'stop': must be a string or an array of up to 4 strings.", null],
    ['a penalty out of range', { presence_penalty: 3 }, 'presence_penalty', "Invalid 'presence_penalty': must be a number from -2 to 2.", null],
    ['a message name', { messages: [{ ...user, name: 'ann' }] }, 'messages[0].name', 'messages[0].name is not supported by this service.', 'unsupported_parameter'],
    [
      'an image part',
      { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] },
      'messages[0].content[1]',
      "Invalid 'messages[0].content[1]': image parts are not supported: this service sends text only to the model.",
      null,
    ],
    [
      'a tool message',
      { messages: [user, { role: 'tool', content: 'x' }] },
      'messages[1].role',
      `Invalid 'messages[1].role': must be "system", "developer", "user" or "assistant" ("tool" messages need tools, which this service does not support).`,
      null,
    ],
    ['stream_options without stream', { stream_options: { include_usage: true } }, 'stream_options', "stream_options is only allowed when 'stream' is true.", null],
    ['an unknown stream option', { stream: true, stream_options: { include_obfuscation: false } }, 'stream_options.include_obfuscation', 'stream_options.include_obfuscation is not supported by this service.', 'unsupported_parameter'],
    ['max_tokens over the limit', { max_tokens: 4097 }, 'max_tokens', "Invalid 'max_tokens': must be at most 4096, this service's limit.", null],
    ['a temperature out of range', { temperature: 3 }, 'temperature', "Invalid 'temperature': must be a number from 0 to 2.", null],
    ['no messages', { messages: [] }, 'messages', "Invalid 'messages': must hold at least one message.", null],
    ['messages missing', { messages: undefined }, 'messages', "Invalid 'messages': is required.", null],
    ['a content of another type', { messages: [{ role: 'user', content: 42 }] }, 'messages[0].content', "Invalid 'messages[0].content': must be a string or a non-empty array of text parts.", null],
  ])('%s: 400 invalid_request_error naming the field, nothing sent upstream', async (_name, fields, param, message, code) => {
    const exchange = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [user], ...fields });
    expect(exchange.status).toBe(400);
    expect(exchange.json()).toEqual({ error: { message, type: 'invalid_request_error', param, code } });
    expect(upstream.requests).toHaveLength(0);
  });

  test.each([
    ['{"messages":[{"role":"user","content":"Hi"}],"__proto__":{"tools":[],"top_p":0.1}}', '__proto__'],
    ['{"messages":[{"role":"user","content":"Hi"}],"constructor":1}', 'constructor'],
  ])('a field named after an object property is refused like any other: %s', async (body, param) => {
    const exchange = await post('/v1/chat/completions', body);
    expect(exchange.status).toBe(400);
    expect(exchange.json()).toEqual({
      error: { message: `${param} is not supported by this service.`, type: 'invalid_request_error', param, code: 'unsupported_parameter' },
    });
    expect(upstream.requests).toHaveLength(0);
  });

  test('the SDK sees a refused field as a BadRequestError with its param and code', async () => {
    const error = await sdk()
      .chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'Hi' }],
        tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
      })
      .then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).param).toBe('tools');
    expect((error as BadRequestError).code).toBe('unsupported_parameter');
  });

  test('a body that is not JSON, and other methods and routes, answer in OpenAI shape', async () => {
    const broken = await post('/v1/chat/completions', '{"messages": [');
    expect(broken.status).toBe(400);
    expect(broken.json()).toEqual({ error: { message: 'The request body is not valid JSON.', type: 'invalid_request_error', param: null, code: null } });

    const text = await post('/v1/chat/completions', 'Hi', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(text.json().error).toEqual({ message: expect.any(String), type: 'invalid_request_error', param: null, code: 'unsupported_media_type' });

    const get = await fetch(`${service.url}/v1/chat/completions`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(((await get.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'method_not_allowed' });

    const unknown = await post('/v1/embeddings', { input: 'x' });
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toEqual({ error: { message: 'Invalid URL (POST /v1/embeddings).', type: 'invalid_request_error', param: null, code: null } });
    // /api keeps its own shape.
    const api = await post('/api/nothing', {});
    expect(api.json()).toEqual({ error: { code: 'not_found', message: 'No route for POST /api/nothing.' } });
  });

  test('a client that goes away mid-stream aborts the upstream request', async () => {
    upstream.enqueue({ kind: 'stream', content: ['First', ' second', ' third'], firstFrameDelayMs: 0, delayMs: 10_000 });
    const stream = await sdk().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    const received: string[] = [];
    for await (const chunk of stream) {
      received.push(chunk.choices[0]?.delta.content ?? '');
      // Breaking out of the SDK's stream aborts its request.
      if (received.join('') === 'First') break;
    }
    const goneAt = await upstream.clientGone(0);
    expect(goneAt).toBeLessThanOrEqual(Date.now());
    expect(upstream.activeStreams()).toBe(0);
    const [logged] = await eventually(() => (completionLogs().length > 0 ? completionLogs() : undefined));
    expect(logged).toMatchObject({ status: 'client_disconnected', characters: 'First'.length, usage: null });
    expect(await rowCounts()).toEqual(NOTHING_STORED);
  });

  test('a client that goes away before a non-streamed answer aborts the upstream request', async () => {
    upstream.enqueue({ kind: 'stream', content: ['Slow'], firstFrameDelayMs: 10_000 });
    const controller = new AbortController();
    const answer = fetch(`${service.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }),
      signal: controller.signal,
    }).catch((error: unknown) => error);
    await eventually(() => (upstream.activeStreams() === 1 ? true : undefined));
    controller.abort();
    await upstream.clientGone(0);
    expect((await answer) as Error).toMatchObject({ name: 'AbortError' });
    await eventually(() => (completionLogs().length > 0 ? true : undefined));
    expect(completionLogs()[0]).toMatchObject({ status: 'client_disconnected' });
  });

  test('an upstream that goes quiet mid-stream fails the completion with upstream_timeout', async () => {
    const quick = await startTestService({ upstream, configToml: '[streaming]\nupstream_idle_timeout_seconds = 0.3\n' });
    try {
      upstream.enqueue({ kind: 'stream', content: ['Started', ' then silence'], ending: 'stall', cutAfter: 1 });
      const exchange = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], stream: true }, {}, quick);
      expect(exchange.text.endsWith('data: {"error":{"message":"The model provider stopped sending.","type":"server_error","param":null,"code":"upstream_timeout"}}\n\n')).toBe(true);
      await upstream.clientGone(0);
    } finally {
      await quick.close();
    }
  });
});

describe('GET /v1/models', () => {
  test('lists the one configured model, which the SDK can also retrieve', async () => {
    const page = await sdk().models.list();
    expect(page.data).toEqual([{ id: 'gpt-4o', object: 'model', created: expect.any(Number), owned_by: 'azure-openai' }]);
    const listed = await fetch(`${service.url}/v1/models`);
    expect(await listed.json()).toEqual({ object: 'list', data: page.data });
    expect(await sdk().models.retrieve('gpt-4o')).toEqual(page.data[0]);
    await expect(sdk().models.retrieve('other')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('with API keys', () => {
  let guarded: TestService;
  let key: string;

  beforeEach(async () => {
    guarded = await startTestService({ upstream, auth: true, configToml: '[limits]\nrequests_per_minute = 3\n' });
    key = (await guarded.keys!.create('app')).key;
  });

  afterEach(async () => {
    await guarded.close();
  });

  test('the SDK works with a key as its apiKey', async () => {
    upstream.enqueue({ kind: 'stream', content: ['Keyed'] });
    const completion = await sdk(guarded, key).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.choices[0]!.message.content).toBe('Keyed');
    expect(await rowCounts(guarded)).toEqual(NOTHING_STORED);
  });

  test.each<[string, Record<string, string>]>([
    ['no key', {}],
    ['an unknown key', { authorization: `Bearer lss_${'A'.repeat(43)}` }],
  ])('%s gets 401 invalid_api_key in OpenAI shape, on every /v1 route', async (_name, headers) => {
    for (const path of ['/v1/chat/completions', '/v1/models', '/v1/nowhere']) {
      const response = await fetch(`${guarded.url}${path}`, { method: path.endsWith('completions') ? 'POST' : 'GET', headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect(await response.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    expect(upstream.requests).toHaveLength(0);
  });

  test('the SDK sees a wrong key as an AuthenticationError', async () => {
    const error = await sdk(guarded, 'lss_wrong').models.list().then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).code).toBe('invalid_api_key');
  });

  test('requests per minute are counted per key across /api and /v1; over the limit is a 429 in OpenAI shape', async () => {
    const headers = { authorization: `Bearer ${key}` };
    expect((await fetch(`${guarded.url}/api/chats`, { headers })).status).toBe(200);
    expect((await fetch(`${guarded.url}/v1/models`, { headers })).status).toBe(200);
    expect((await fetch(`${guarded.url}/v1/models`, { headers })).status).toBe(200);
    const error = await sdk(guarded, key).models.list().then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(RateLimitError);
    const limited = error as RateLimitError;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.error).toEqual({ message: expect.stringMatching(/^Too many requests for this API key/), type: 'requests', param: null, code: 'rate_limit_exceeded' });
    // /api still answers in its own shape.
    const api = await fetch(`${guarded.url}/api/chats`, { headers });
    expect(api.status).toBe(429);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
  });
});

describe('open streams per key', () => {
  test('an /api/chat stream and a /v1 completion count against one limit; over it is a 429 in OpenAI shape', async () => {
    const limited = await startTestService({ upstream, auth: true, configToml: '[limits]\nmax_open_streams = 1\n' });
    try {
      const { key } = await limited.keys!.create('app');
      upstream.enqueue({ kind: 'stream', content: ['Held', ' open'], ending: 'stall', cutAfter: 1 });
      const held = await openSse(`${limited.url}/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify(userTurn(randomUUID(), 'Hi')),
      });
      await held.readUntil((text) => text.includes('Held'));
      const error = await sdk(limited, key)
        .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true })
        .then(() => undefined, (caught: unknown) => caught);
      expect(error).toBeInstanceOf(RateLimitError);
      expect((error as RateLimitError).headers.get('retry-after')).toBe('1');
      expect((error as RateLimitError).error).toMatchObject({ type: 'requests', param: null, code: 'rate_limit_exceeded' });
      expect(upstream.requests).toHaveLength(1);
      held.hangUp();
    } finally {
      await limited.close();
    }
  });
});

describe('replies generating at once per key', () => {
  test('a /v1 completion counts as one of the key\'s replies: over concurrent_streams, 429; freed when it ends', async () => {
    const limited = await startTestService({ upstream, auth: true, configToml: '[limits]\nconcurrent_streams = 1\nmax_open_streams = 10\n' });
    try {
      const { key } = await limited.keys!.create('app');
      upstream.enqueue({ kind: 'stream', content: ['Held', ' open'], ending: 'stall', cutAfter: 1 });
      const held = await openSse(`${limited.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], stream: true }),
      });
      await held.readUntil((text) => text.includes('Held'));
      // Another completion, and a chat turn, of the same key are refused while it runs.
      const error = await sdk(limited, key)
        .chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], model: 'gpt-4o' })
        .then(() => undefined, (caught: unknown) => caught);
      expect(error).toBeInstanceOf(RateLimitError);
      expect((error as RateLimitError).message).toContain('At most 1 replies may stream at once for this API key.');
      const turn = await postChat(limited.url, userTurn(randomUUID(), 'Hi'), { authorization: `Bearer ${key}` });
      expect(turn.status).toBe(429);
      expect(upstream.requests).toHaveLength(1);
      held.hangUp();
      // Once it has ended, the key's next completion goes through.
      await upstream.clientGone(0);
      upstream.enqueue({ kind: 'stream', content: ['Next'] });
      // The release follows the upstream's abort by a moment: asked again until it has come.
      const next = await eventually(() => sdk(limited, key).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Again' }] }).catch(() => undefined));
      expect(next.choices[0]!.message.content).toBe('Next');
    } finally {
      await limited.close();
    }
  });
});

describe('a reasoning model', () => {
  test('is sent max_completion_tokens; a temperature is refused rather than dropped', async () => {
    const reasoning = await startFakeUpstream({ deployment: 'o3-mini', reasoningModel: true });
    const target = await startTestService({ upstream: reasoning });
    try {
      const refused = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], temperature: 0.5 }, {}, target);
      expect(refused.status).toBe(400);
      expect(refused.json()).toEqual({
        error: { message: 'The model o3-mini is a reasoning model: it takes no temperature.', type: 'invalid_request_error', param: 'temperature', code: null },
      });
      const topP = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], top_p: 0.5 }, {}, target);
      expect(topP.json()).toEqual({
        error: { message: 'The model o3-mini is a reasoning model: it takes no top_p.', type: 'invalid_request_error', param: 'top_p', code: null },
      });
      expect(reasoning.requests).toHaveLength(0);
      reasoning.enqueue({ kind: 'stream', content: ['Thought'] });
      const answered = await post('/v1/chat/completions', { model: 'o3-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 50 }, {}, target);
      expect(answered.json().choices[0].message.content).toBe('Thought');
      expect(reasoning.requests[0]!.body).toEqual({
        model: 'o3-mini',
        messages: [{ role: 'user', content: 'Hi' }],
        max_completion_tokens: 50,
        stream: true,
        stream_options: { include_usage: true },
      });
    } finally {
      await target.close();
      await reasoning.close();
    }
  });
});
