import { randomUUID } from 'node:crypto';
import { eventually } from '../support/chat-client';
import { azureErrors, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;
let key: string;
let keyId: string;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  // No retries: a scripted upstream failure is answered at once.
  service = await startTestService({ upstream, auth: true, configToml: '[openai]\nmax_retries = 0\n' });
  const created = await service.keys!.create('app');
  key = created.key;
  keyId = created.record.id;
});

afterAll(async () => {
  await service.close();
  await upstream.close();
});

/** Sends a request with a known request id and user agent; answers its headers and status. */
async function send(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  const requestId = `log-${randomUUID()}`;
  const requestHeaders = { 'x-request-id': requestId, 'user-agent': 'ExampleApp/1.0 (agent header value)', ...headers };
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: { ...requestHeaders, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await response.text();
  return { requestId, status: response.status, requestHeaders, responseHeaders: response.headers };
}

/** The raw text of the line logged when request `requestId` ended, once it is written. */
function completedLine(requestId: string, message = 'request completed'): Promise<string> {
  return eventually(() =>
    service.logs.find((line) => {
      const entry = JSON.parse(line) as { requestId?: string; msg?: string };
      return entry.requestId === requestId && entry.msg === message;
    }),
  );
}

describe('the line logged when a request completes', () => {
  const chatId = randomUUID();
  /** A message of the chat, for a `before` cursor: the turn of the first row stores it. */
  const firstMessageId = async () => (await service.query<{ id: string }>('SELECT id FROM Message WHERE chatId = ? ORDER BY seq', chatId))[0]!.id;

  test.each<[string, string, () => string | Promise<string>, boolean, unknown, number, number]>([
    ['a streamed turn', 'POST', () => '/api/chat', true, { chatId, messages: [{ role: 'user', content: 'Hi' }] }, 200, 30],
    ['a page of history (the longest URL the API answers)', 'GET', async () => `/api/chats/${chatId}/messages?limit=100&before=${await firstMessageId()}`, true, undefined, 200, 30],
    ['a list of chats', 'GET', () => '/api/chats?limit=5', true, undefined, 200, 30],
    ['a request without a key', 'GET', () => '/api/chats?limit=5', false, undefined, 401, 40],
  ])('%s: request id, key id, method, url, status and response time, under 400 bytes', async (_name, method, pathOf, withKey, body, status, level) => {
    const path = await pathOf();
    const exchange = await send(method, path, withKey ? { authorization: `Bearer ${key}` } : {}, body);
    expect(exchange.status).toBe(status);

    const line = await completedLine(exchange.requestId);
    expect(JSON.parse(line)).toEqual({
      level,
      time: expect.any(String),
      service: 'llm-streaming-service',
      requestId: exchange.requestId,
      ...(withKey ? { keyId } : {}),
      // A turn's line names its reply, as the reply's own lines do.
      ...(path === '/api/chat' ? { messageId: expect.stringMatching(/^[0-9a-f-]{36}$/) } : {}),
      method,
      url: path,
      status,
      responseTime: expect.any(Number),
      msg: 'request completed',
    });
    expect(Buffer.byteLength(line)).toBeLessThan(400);
  });

  test('a URL padded by the client is logged clipped to its first 120 characters, and the line stays under 400 bytes', async () => {
    const path = `/api/chats?limit=5&padding=${'x'.repeat(5_000)}`;
    const exchange = await send('GET', path, { authorization: `Bearer ${key}` });
    expect(exchange.status).toBe(200);
    const line = await completedLine(exchange.requestId);
    expect(JSON.parse(line)).toMatchObject({ level: 30, url: `${path.slice(0, 120)}…`, status: 200 });
    expect(Buffer.byteLength(line)).toBeLessThan(400);
  });

  test('an unknown route is refused with its path in the answer, and clipped in the log', async () => {
    const path = `/api/${'y'.repeat(5_000)}`;
    const exchange = await send('GET', path, { authorization: `Bearer ${key}` });
    expect(exchange.status).toBe(404);
    const refused = JSON.parse(await completedLine(exchange.requestId, 'request refused')) as { reason: string };
    expect(refused.reason).toBe(`${`No route for GET ${path}.`.slice(0, 120)}…`);
  });

  test('a 5xx: the same fields at error, as "request errored"; the error itself is on the error handler\'s line', async () => {
    upstream.enqueue(azureErrors.serverError(500));
    const body = { chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] };
    const exchange = await send('POST', '/api/chat', { authorization: `Bearer ${key}` }, body);
    expect(exchange.status).toBe(502);

    const line = await completedLine(exchange.requestId, 'request errored');
    expect(JSON.parse(line)).toEqual({
      level: 50,
      time: expect.any(String),
      service: 'llm-streaming-service',
      requestId: exchange.requestId,
      keyId,
      method: 'POST',
      url: '/api/chat',
      status: 502,
      responseTime: expect.any(Number),
      msg: 'request errored',
    });
    expect(Buffer.byteLength(line)).toBeLessThan(400);
    const failed = service.logs.map((text) => JSON.parse(text)).find((entry) => entry.requestId === exchange.requestId && entry.msg === 'request failed');
    expect(failed).toMatchObject({ level: 50, keyId, code: 'upstream_error' });
  });

  test('health probes are answered with their request id but not logged; the request after one is', async () => {
    const probe = await send('GET', '/healthz', {});
    expect(probe.status).toBe(200);
    expect(probe.responseHeaders.get('x-request-id')).toBe(probe.requestId);
    const after = await send('GET', '/api/chats?limit=1', { authorization: `Bearer ${key}` });
    await completedLine(after.requestId);
    expect(service.logs.filter((line) => line.includes(probe.requestId))).toEqual([]);
  });

  test('holds no header but the request id: not the key, the user agent or the security headers', async () => {
    const exchange = await send('GET', '/api/chats', { authorization: `Bearer ${key}` });
    const line = await completedLine(exchange.requestId);
    const headerValues = new Set([...Object.values(exchange.requestHeaders), ...exchange.responseHeaders.values()]);
    const fromHeaders = Object.entries(JSON.parse(line) as Record<string, unknown>).filter(
      ([, value]) => typeof value === 'string' && headerValues.has(value),
    );
    expect(fromHeaders).toEqual([['requestId', exchange.requestId]]);
    for (const leak of [key, 'ExampleApp/1.0', "default-src 'none'", 'nosniff', 'headers', 'authorization']) {
      expect(line).not.toContain(leak);
    }
  });
});
