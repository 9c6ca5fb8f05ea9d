import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getPath, postChat, userTurn } from '../support/chat-client';
import { azureErrors, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { parseParts } from '../support/sse';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  // No SDK retries here unless a test asks for them: each scripted failure is seen once.
  service = await startTestService({ upstream, configToml: '[openai]\nmax_retries = 0\n[server]\nbody_limit = "64kb"\n' });
});

afterAll(async () => {
  await service.close();
  await upstream.close();
});

async function rowCounts() {
  const [counts] = await service.query<{ chats: number; messages: number }>(
    'SELECT (SELECT COUNT(*) FROM Chat) AS chats, (SELECT COUNT(*) FROM Message) AS messages',
  );
  return counts!;
}

function repliesOf(chatId: string) {
  return service.query<{ role: string; content: string; status: string; finishReason: string | null }>(
    'SELECT role, content, status, finishReason FROM Message WHERE chatId = ? ORDER BY seq',
    chatId,
  );
}

describe('bad input', () => {
  const chatId = '0b8d5c3e-1f2a-4b6c-9d7e-8f9a0b1c2d3e';
  const user = { role: 'user', content: 'Hi' };

  test.each<[string, number, string, unknown, Record<string, string>]>([
    ['malformed JSON', 400, 'invalid_json', '{"chatId": ', {}],
    ['a JSON string', 400, 'invalid_json', '"hello"', {}],
    ['a JSON array', 400, 'invalid_request', '[]', {}],
    ['no chatId', 400, 'invalid_request', { messages: [user] }, {}],
    ['a chatId outside the id set', 400, 'invalid_request', { chatId: 'chat/1', messages: [user] }, {}],
    ['no messages', 400, 'invalid_request', { chatId }, {}],
    ['an empty messages array', 400, 'invalid_request', { chatId, messages: [] }, {}],
    ['only a system message', 400, 'invalid_request', { chatId, messages: [{ role: 'system', content: 'Be brief.' }] }, {}],
    ['an unknown role', 400, 'invalid_request', { chatId, messages: [{ role: 'tool', content: 'x' }] }, {}],
    ['content that is not a string', 400, 'invalid_request', { chatId, messages: [{ role: 'user', content: 42 }] }, {}],
    ['empty content', 400, 'invalid_request', { chatId, messages: [{ role: 'user', content: '' }] }, {}],
    ['an unknown message field', 400, 'invalid_request', { chatId, messages: [{ ...user, name: 'x' }] }, {}],
    ['a body over the limit', 413, 'payload_too_large', { chatId, messages: [{ role: 'user', content: 'x'.repeat(70_000) }] }, {}],
    ['a form body', 415, 'unsupported_media_type', 'chatId=x', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['a text body', 415, 'unsupported_media_type', 'hello', { 'content-type': 'text/plain' }],
    ['an unknown charset', 415, 'unsupported_media_type', '{}', { 'content-type': 'application/json; charset=klingon' }],
  ])('%s gets %d %s, and nothing is stored or sent upstream', async (_name, status, code, body, headers) => {
    const before = { rows: await rowCounts(), upstream: upstream.requests.length };
    const exchange = await postChat(service.url, body, headers);
    expect(exchange.status).toBe(status);
    expect(exchange.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const answer = exchange.json();
    expect(answer.error.code).toBe(code);
    expect(typeof answer.error.message).toBe('string');
    expect(exchange.text).not.toMatch(/at .+\.(ts|js):\d+/); // no stack trace
    expect(await rowCounts()).toEqual(before.rows);
    expect(upstream.requests.length).toBe(before.upstream);
  });

  test('invalid fields are listed with their paths', async () => {
    const exchange = await postChat(service.url, { chatId: 'no pe', messages: [{ role: 'bot', content: 'x' }] });
    expect(exchange.json()).toEqual({
      error: {
        code: 'invalid_request',
        message: 'Invalid chat request.',
        details: [
          { path: 'chatId', message: 'chatId must be 1 to 128 letters, digits, "_" or "-"' },
          { path: 'messages.0.role', message: 'Invalid option: expected one of "system"|"user"|"assistant"' },
        ],
      },
    });
  });

  const ID_SET = 'chatId must be 1 to 128 letters, digits, "_" or "-"';
  test.each<[string, Record<string, unknown>, string]>([
    ['no chatId', {}, 'chatId is required'],
    ['chatId: null', { chatId: null }, ID_SET],
    ['chatId: ""', { chatId: '' }, ID_SET],
    ['chatId: 42', { chatId: 42 }, ID_SET],
    ['a chatId with a character outside the set', { chatId: 'chat 1' }, ID_SET],
    ['a chatId of 129 characters', { chatId: 'a'.repeat(129) }, ID_SET],
  ])('%s: 400 with one detail that says so, and nothing stored', async (_name, chatIdField, detail) => {
    const before = { rows: await rowCounts(), upstream: upstream.requests.length };
    const exchange = await postChat(service.url, { ...chatIdField, messages: [user] });
    expect(exchange.status).toBe(400);
    expect(exchange.json()).toEqual({ error: { code: 'invalid_request', message: 'Invalid chat request.', details: [{ path: 'chatId', message: detail }] } });
    expect(await rowCounts()).toEqual(before.rows);
    expect(upstream.requests.length).toBe(before.upstream);
  });

  test.each<[string, unknown[], string]>([
    ['messages: []', [], 'messages must not be empty'],
    ['messages: [system]', [{ role: 'system', content: 'Be brief.' }], 'messages must contain at least one user or assistant message'],
    ['a message holding U+0000', [{ role: 'user', content: 'a\u0000b' }], 'messages.0.content: content must not contain the NUL character (U+0000)'],
  ])('%s: 400 with one detail that says so, and nothing stored', async (_name, messages, detail) => {
    const exchange = await postChat(service.url, { chatId: randomUUID(), messages });
    expect(exchange.status).toBe(400);
    const [path, message] = detail.includes(': ') ? detail.split(': ') : ['messages', detail];
    expect(exchange.json()).toEqual({ error: { code: 'invalid_request', message: 'Invalid chat request.', details: [{ path, message }] } });
    expect(await service.query('SELECT id FROM Chat')).toEqual([]);
    expect(upstream.requests).toHaveLength(0);
  });

  test.each<[string, number, string, string, string]>([
    ['an unknown route', 404, 'not_found', 'GET', '/nope'],
    ['an unknown API route', 404, 'not_found', 'POST', '/api/chatz'],
    ['GET on the chat route', 405, 'method_not_allowed', 'GET', '/api/chat'],
    ['the history of an unknown chat', 404, 'chat_not_found', 'GET', `/api/chats/${randomUUID()}/messages`],
    ['the history of a malformed chat id', 400, 'invalid_request', 'GET', '/api/chats/a%20b/messages'],
  ])('%s gets %d %s as JSON', async (_name, status, code, method, path) => {
    const response = await fetch(`${service.url}${path}`, { method });
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  test('405 names the allowed method', async () => {
    const response = await fetch(`${service.url}/api/chat`);
    expect(response.headers.get('allow')).toBe('POST');
  });
});

describe('upstream failures before the stream', () => {
  test.each<[string, number, string, () => ReturnType<typeof azureErrors.serverError>]>([
    ['a 500', 502, 'upstream_error', () => azureErrors.serverError(500)],
    ['a 503', 502, 'upstream_error', () => azureErrors.serverError(503)],
    ['a context overflow', 400, 'context_length_exceeded', () => azureErrors.contextLengthExceeded()],
    ['a content filter refusal', 400, 'content_filtered', () => azureErrors.contentFilter()],
    ['a rejected key', 502, 'upstream_error', () => azureErrors.unauthorized()],
    ['an unknown deployment', 502, 'upstream_error', () => azureErrors.deploymentNotFound()],
  ])('%s answers %d %s; the question is kept and the reply marked failed', async (_name, status, code, script) => {
    const chatId = randomUUID();
    upstream.enqueue(script());
    const exchange = await postChat(service.url, userTurn(chatId, 'Question'));
    expect(exchange.status).toBe(status);
    expect(exchange.json().error.code).toBe(code);
    expect(await repliesOf(chatId)).toEqual([
      { role: 'user', content: 'Question', status: 'completed', finishReason: null },
      { role: 'assistant', content: '', status: 'failed', finishReason: 'error' },
    ]);
  });

  test('a rate limit answers 429 and passes Retry-After on', async () => {
    upstream.enqueue(azureErrors.rateLimited(7, 7000));
    const exchange = await postChat(service.url, userTurn(randomUUID(), 'Question'));
    expect(exchange.status).toBe(429);
    expect(exchange.headers.get('retry-after')).toBe('7');
    expect(exchange.json().error.code).toBe('upstream_rate_limited');
  });

  test('a failed turn is left out of the next context', async () => {
    const chatId = randomUUID();
    upstream.enqueue(azureErrors.serverError(500));
    await postChat(service.url, userTurn(chatId, 'Lost question'));
    upstream.enqueue({ kind: 'stream', content: ['Answer'] });
    await postChat(service.url, userTurn(chatId, 'New question'));
    expect(upstream.requests.at(-1)!.body.messages.slice(1)).toEqual([{ role: 'user', content: 'New question' }]);
  });

  test('an unreachable upstream answers 502', async () => {
    const closed = await startFakeUpstream();
    await closed.close();
    const unreachable = await startTestService({ upstream: closed, configToml: '[openai]\nmax_retries = 0\n' });
    try {
      const exchange = await postChat(unreachable.url, userTurn(randomUUID(), 'Hello?'));
      expect(exchange.status).toBe(502);
      expect(exchange.json()).toEqual({ error: { code: 'upstream_error', message: 'Could not reach the model provider.' } });
    } finally {
      await unreachable.close();
    }
  });

  test('an upstream that never answers times out with 504', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const waiting = await startTestService({
      environment: { AZURE_OPENAI_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: url, AZURE_OPENAI_DEPLOYMENT_NAME: 'd' },
      configToml: '[openai]\nmax_retries = 0\nrequest_timeout_seconds = 0.3\n',
    });
    try {
      const chatId = randomUUID();
      const exchange = await postChat(waiting.url, userTurn(chatId, 'Hello?'));
      expect(exchange.status).toBe(504);
      expect(exchange.json().error.code).toBe('upstream_timeout');
    } finally {
      await waiting.close();
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe('upstream retries before the first token', () => {
  test('a 429 once, then success: the reply arrives', async () => {
    const retrying = await startTestService({ upstream, configToml: '[openai]\nmax_retries = 2\n' });
    try {
      const before = upstream.requests.length;
      upstream.enqueue(azureErrors.rateLimited(1, 20), { kind: 'stream', content: ['After ', 'retry'] });
      const chatId = randomUUID();
      const exchange = await postChat(retrying.url, userTurn(chatId, 'Hi'));
      expect(exchange.status).toBe(200);
      expect(parseParts(exchange.text).filter((part) => part.type === 'text-delta').map((part) => part.delta)).toEqual(['After ', 'retry']);
      expect(upstream.requests.length - before).toBe(2);
      expect(upstream.requests.at(-1)!.body).toEqual(upstream.requests.at(-2)!.body);
      expect(await retrying.query('SELECT content, status FROM Message WHERE role = ?', 'assistant')).toEqual([{ content: 'After retry', status: 'completed' }]);
    } finally {
      await retrying.close();
    }
  });
});

describe('upstream failures mid-stream', () => {
  test('a connection reset sends an error part, ends the response and keeps the partial reply as failed', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Partial ', 'reply'], ending: 'reset', cutAfter: 1 });
    const exchange = await postChat(service.url, userTurn(chatId, 'Hi'));
    expect(exchange.status).toBe(200);
    const [reply] = await service.query<{ id: string }>("SELECT id FROM Message WHERE chatId = ? AND role = 'assistant'", chatId);
    expect(exchange.text).toBe(
      `id: 1\ndata: {"type":"start","messageId":"${reply!.id}","messageMetadata":{"contextMessages":2,"droppedMessages":0,"promptTokensEstimate":18}}\n\n` +
        'id: 2\ndata: {"type":"text-start","id":"text-0"}\n\n' +
        'id: 3\ndata: {"type":"text-delta","id":"text-0","delta":"Partial "}\n\n' +
        'id: 4\ndata: {"type":"text-end","id":"text-0"}\n\n' +
        `id: 5\ndata: {"type":"error","errorText":"The model provider's response broke off."}\n\n` +
        'id: 6\ndata: [DONE]\n\n',
    );
    expect((await repliesOf(chatId))[1]).toEqual({ role: 'assistant', content: 'Partial ', status: 'failed', finishReason: 'error' });
  });

  test('a stream that ends without a finish frame is a failure, not a completed reply', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Cut', ' short'], ending: 'end-without-done', cutAfter: 1 });
    const exchange = await postChat(service.url, userTurn(chatId, 'Hi'));
    expect(parseParts(exchange.text).slice(-1)).toEqual([{ type: 'error', errorText: 'The model provider ended the stream early.' }]);
    expect((await repliesOf(chatId))[1]).toEqual({ role: 'assistant', content: 'Cut', status: 'failed', finishReason: 'error' });
  });

  test('an error frame mid-stream fails the reply and keeps what came before it', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Half', ' done'], ending: 'error-frame', cutAfter: 1 });
    const exchange = await postChat(service.url, userTurn(chatId, 'Hi'));
    expect(parseParts(exchange.text).slice(-3)).toEqual([
      { type: 'text-delta', id: 'text-0', delta: 'Half' },
      { type: 'text-end', id: 'text-0' },
      { type: 'error', errorText: 'The model provider reported an error mid-stream.' },
    ]);
    expect(exchange.text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect((await repliesOf(chatId))[1]).toEqual({ role: 'assistant', content: 'Half', status: 'failed', finishReason: 'error' });
  });

  test('a silent upstream is aborted after the idle timeout', async () => {
    const impatient = await startTestService({ upstream, configToml: '[streaming]\nupstream_idle_timeout_seconds = 0.3\n' });
    try {
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['Thinking', '...'], ending: 'stall', cutAfter: 1 });
      const started = Date.now();
      const exchange = await postChat(impatient.url, userTurn(chatId, 'Hi'));
      expect(Date.now() - started).toBeLessThan(5000);
      expect(parseParts(exchange.text).slice(-2)).toEqual([
        { type: 'text-end', id: 'text-0' },
        { type: 'error', errorText: 'The model provider stopped sending.' },
      ]);
      await upstream.clientGone(upstream.requests.length - 1);
      expect(await impatient.query('SELECT content, status FROM Message WHERE role = ?', 'assistant')).toEqual([{ content: 'Thinking', status: 'failed' }]);
    } finally {
      await impatient.close();
    }
  });

  test('finish reasons other than stop are passed on', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Long'], finishReason: 'length' });
    const exchange = await postChat(service.url, userTurn(chatId, 'Hi'));
    expect(parseParts(exchange.text).at(-1)).toMatchObject({ type: 'finish', finishReason: 'length' });
    expect((await repliesOf(chatId))[1]).toEqual({ role: 'assistant', content: 'Long', status: 'completed', finishReason: 'length' });
    const history = (await getPath(service.url, `/api/chats/${chatId}/messages`)).json();
    expect(history.messages[1].finishReason).toBe('length');
  });
});

describe('internal failures', () => {
  test('a broken database answers 500 internal_error JSON that reveals nothing, logs the cause, and the service recovers', async () => {
    const own = await startTestService({ upstream });
    try {
      const chatId = randomUUID();
      // What a failing disk or a schema changed under the service looks like from inside.
      await own.execute('ALTER TABLE "Chat" RENAME TO "ChatMoved"');
      const upstreamCalls = upstream.requests.length;
      const refused = [await postChat(own.url, userTurn(chatId, 'Hello')), await getPath(own.url, '/api/chats')];
      for (const exchange of refused) {
        expect(exchange.status).toBe(500);
        expect(exchange.headers.get('content-type')).toBe('application/json; charset=utf-8');
        expect(exchange.json()).toEqual({ error: { code: 'internal_error', message: 'An internal error occurred.' } });
      }
      // The cause is in the log, for the operator, not in the answer.
      expect(own.logs.join('\n')).toContain('no such table: Chat');
      expect(upstream.requests.length).toBe(upstreamCalls);

      await own.execute('ALTER TABLE "ChatMoved" RENAME TO "Chat"');
      const recovered = await postChat(own.url, userTurn(chatId, 'Hello again'));
      expect(recovered.status).toBe(200);
      expect(await own.query('SELECT role, content FROM Message WHERE chatId = ? ORDER BY seq', chatId)).toEqual([
        { role: 'user', content: 'Hello again' },
        { role: 'assistant', content: expect.any(String) },
      ]);
    } finally {
      await own.close();
    }
  });
});
