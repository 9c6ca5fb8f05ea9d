/**
 * GET /metrics: what a Prometheus scrape sees of chat turns, completions, upstream failures and
 * HTTP requests, who may scrape, and the request id, message id and trace context in the logs.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { call, eventually, openSse } from '../support/chat-client';
import { azureErrors, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { parseSamples, sampleValue } from '../support/prometheus-text';
import { parseSse } from '../support/sse';
import { startTestService, type TestService } from '../support/test-service';
import { PROJECT_ROOT } from '../../src/build-service';
import { isPrivateAddress } from '../../src/metrics/scrape-access';

let upstream: FakeUpstream;
let service: TestService;
let auth: Record<string, string>;
let model: string;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream, auth: true });
  auth = { authorization: `Bearer ${(await service.keys!.create('app')).key}` };
  model = upstream.deployment;
});

afterAll(async () => {
  await service.close();
  await upstream.close();
});

/** The exposition as a scraper on this machine gets it (no credentials). */
async function scrape(url = service.url, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${url}/metrics`, { headers });
  const text = await response.text();
  expect({ status: response.status, type: response.headers.get('content-type') }).toEqual({ status: 200, type: 'text/plain; version=0.0.4; charset=utf-8' });
  return text;
}

/** How much sample `name{labels}` grew from `before` to `after` (a missing sample counts as 0). */
function growth(before: string, after: string, name: string, labels: Record<string, string> = {}): number {
  return (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
}

/** The first scrape of which `check` holds (what is counted when a reply ends may land just after its stream). */
function scrapeWhen(check: (scraped: string) => boolean): Promise<string> {
  return eventually(async () => {
    const scraped = await scrape();
    return check(scraped) ? scraped : undefined;
  });
}

/** Starts a turn of a new chat as a stream. */
function startTurn(chatId: string, headers: Record<string, string> = {}) {
  return openSse(`${service.url}/api/chat`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ chatId, messages: [{ role: 'user', content: 'Hello' }] }),
  });
}

function logLines(): Array<Record<string, unknown>> {
  return service.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('the series of a reply', () => {
  test('a completed turn: its reply, duration, time to first token, time per output token, tokens and HTTP request', async () => {
    const before = await scrape();
    upstream.enqueue({ kind: 'stream', content: ['One', ' two', ' three', ' four'], delayMs: 20, usage: { prompt_tokens: 31, completion_tokens: 4, total_tokens: 35 } });
    const chatId = randomUUID();
    const text = await (await startTurn(chatId)).readToEnd();
    expect(parseSse(text).at(-1)?.data).toBe('[DONE]');
    const [reply] = await service.query<{ timeToFirstTokenMs: number }>("SELECT timeToFirstTokenMs FROM Message WHERE chatId = ? AND role = 'assistant'", chatId);
    const after = await scrapeWhen((scraped) => growth(before, scraped, 'llm_replies_total', { status: 'completed' }) === 1);

    expect(growth(before, after, 'gen_ai_server_request_duration_seconds_count', { model, status: 'completed' })).toBe(1);
    expect(growth(before, after, 'gen_ai_server_time_to_first_token_seconds_count', { model })).toBe(1);
    // The same figure as the stored reply's.
    expect(growth(before, after, 'gen_ai_server_time_to_first_token_seconds_sum', { model })).toBeCloseTo(reply!.timeToFirstTokenMs / 1000, 6);
    // Three tokens after the first, 20 ms apart.
    expect(growth(before, after, 'gen_ai_server_time_per_output_token_seconds_count', { model })).toBe(1);
    const perToken = growth(before, after, 'gen_ai_server_time_per_output_token_seconds_sum', { model });
    expect(perToken).toBeGreaterThanOrEqual(0.015);
    expect(perToken).toBeLessThan(0.5);
    expect(growth(before, after, 'gen_ai_usage_input_tokens_total', { model, estimated: 'false' })).toBe(31);
    expect(growth(before, after, 'gen_ai_usage_output_tokens_total', { model, estimated: 'false' })).toBe(4);
    expect(growth(before, after, 'gen_ai_usage_output_tokens_total', { model, estimated: 'true' })).toBe(0);
    expect(growth(before, after, 'http_requests_total', { method: 'POST', route: '/api/chat', status: '200' })).toBe(1);
    expect(growth(before, after, 'http_request_duration_seconds_count', { method: 'POST', route: '/api/chat', status: '200' })).toBe(1);
    expect(sampleValue(after, 'llm_generations_active')).toBe(0);
    expect(sampleValue(after, 'llm_stream_readers_active')).toBe(0);
  });

  test('usage the provider did not send is counted here, and labelled estimated', async () => {
    const before = await scrape();
    upstream.enqueue({ kind: 'stream', content: ['Hello', ' world'], usage: null });
    await (await startTurn(randomUUID())).readToEnd();
    const after = await scrapeWhen((scraped) => growth(before, scraped, 'llm_replies_total', { status: 'completed' }) === 1);
    expect(growth(before, after, 'gen_ai_usage_output_tokens_total', { model, estimated: 'true' })).toBe(2);
    expect(growth(before, after, 'gen_ai_usage_input_tokens_total', { model, estimated: 'true' })).toBeGreaterThan(0);
    expect(growth(before, after, 'gen_ai_usage_output_tokens_total', { model, estimated: 'false' })).toBe(0);
  });

  test('a streaming reply is an active generation; each of its streams an active reader; a cancelled one ends both', async () => {
    const before = await scrape();
    upstream.enqueue({ kind: 'stream', content: Array.from({ length: 50 }, (_unused, index) => `w${index} `), delayMs: 50 });
    const chatId = randomUUID();
    const turn = await startTurn(chatId);
    await turn.readUntil((text) => text.includes('"delta":"w1 "'));
    const resume = await openSse(`${service.url}/api/chat/${chatId}/stream`, { headers: auth });
    await resume.readUntil((text) => text.includes('"delta"'));
    const during = await scrape();
    expect(sampleValue(during, 'llm_generations_active')).toBe(1);
    expect(sampleValue(during, 'llm_stream_readers_active')).toBe(2);

    expect((await call(service.url, 'DELETE', `/api/chat/${chatId}/stream`, auth)).status).toBe(200);
    await Promise.all([turn.readToEnd(), resume.readToEnd()]);
    const after = await scrapeWhen((scraped) => sampleValue(scraped, 'llm_stream_readers_active') === 0 && sampleValue(scraped, 'llm_generations_active') === 0);
    expect(growth(before, after, 'llm_replies_total', { status: 'cancelled' })).toBe(1);
    expect(growth(before, after, 'llm_replies_total', { status: 'completed' })).toBe(0);
    expect(growth(before, after, 'gen_ai_server_request_duration_seconds_count', { model, status: 'cancelled' })).toBe(1);
    // Only completed replies have a time per output token.
    expect(growth(before, after, 'gen_ai_server_time_per_output_token_seconds_count', { model })).toBe(0);
    expect(growth(before, after, 'http_requests_total', { method: 'GET', route: '/api/chat/:chatId/stream', status: '200' })).toBe(1);
    expect(growth(before, after, 'http_requests_total', { method: 'DELETE', route: '/api/chat/:chatId/stream', status: '200' })).toBe(1);
  });

  test('a client that leaves before its reply started streaming is no reader left open', async () => {
    const before = await scrape();
    // The upstream refuses once and asks for a pause: the client leaves during it (no retry is sent).
    upstream.enqueue(azureErrors.rateLimited(1, 1000));
    const controller = new AbortController();
    const turn = fetch(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] }),
      signal: controller.signal,
    }).catch((error: unknown) => error);
    await eventually(() => (upstream.requests.length > 0 && upstream.requests.at(-1)!.body.messages.at(-1).content === 'Hi' ? true : undefined));
    controller.abort();
    await turn;
    const after = await scrapeWhen((scraped) => growth(before, scraped, 'llm_replies_total', { status: 'interrupted' }) === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sampleValue(await scrape(), 'llm_stream_readers_active')).toBe(0);
    expect(sampleValue(after, 'llm_generations_active')).toBe(0);
  });

  test('upstream failures by code, and the retries before them', async () => {
    const before = await scrape();
    // Refused three times: the first try and both retries ([openai] max_retries = 2).
    upstream.enqueue(azureErrors.rateLimited(1, 5), azureErrors.rateLimited(1, 5), azureErrors.rateLimited(1, 5));
    const refused = await call(service.url, 'POST', '/api/chat', auth, { chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] });
    expect(refused.body.error.code).toBe('upstream_rate_limited');
    // Cut after two deltas.
    upstream.enqueue({ kind: 'stream', content: ['a', 'b', 'c'], ending: 'reset', cutAfter: 2 });
    const cut = await (await startTurn(randomUUID())).readToEnd();
    expect(cut).toContain('"type":"error"');
    const after = await scrapeWhen((scraped) => growth(before, scraped, 'llm_replies_total', { status: 'failed' }) === 2);

    expect(growth(before, after, 'llm_upstream_retries_total')).toBe(2);
    expect(growth(before, after, 'llm_upstream_errors_total', { code: 'upstream_rate_limited' })).toBe(1);
    expect(growth(before, after, 'llm_upstream_errors_total', { code: 'upstream_error' })).toBe(1);
    expect(growth(before, after, 'gen_ai_server_request_duration_seconds_count', { model, status: 'failed' })).toBe(2);
    // The cut reply had a first token; the refused one had none.
    expect(growth(before, after, 'gen_ai_server_time_to_first_token_seconds_count', { model })).toBe(1);
    expect(growth(before, after, 'http_requests_total', { method: 'POST', route: '/api/chat', status: '429' })).toBe(1);
    expect(growth(before, after, 'http_requests_total', { method: 'POST', route: '/api/chat', status: '200' })).toBe(1);
  });

  test('completions of /v1 count as replies, with their tokens and failures', async () => {
    const before = await scrape();
    upstream.enqueue({ kind: 'stream', content: ['Hi', ' there'], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } });
    const completion = await call(service.url, 'POST', '/v1/chat/completions', auth, { model, messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.body.choices[0].message.content).toBe('Hi there');
    upstream.enqueue({ kind: 'stream', content: ['Hi', ' there'], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } });
    const streamed = await openSse(`${service.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'Hi' }] }),
    });
    await streamed.readToEnd();
    upstream.enqueue(azureErrors.rateLimited(1, 5), azureErrors.rateLimited(1, 5), azureErrors.rateLimited(1, 5));
    expect((await call(service.url, 'POST', '/v1/chat/completions', auth, { messages: [{ role: 'user', content: 'Hi' }] })).status).toBe(429);
    const after = await scrapeWhen((scraped) => growth(before, scraped, 'llm_replies_total', { status: 'completed' }) === 2);
    expect(growth(before, after, 'gen_ai_usage_input_tokens_total', { model, estimated: 'false' })).toBe(18);
    expect(growth(before, after, 'gen_ai_usage_output_tokens_total', { model, estimated: 'false' })).toBe(4);
    expect(growth(before, after, 'gen_ai_server_time_to_first_token_seconds_count', { model })).toBe(2);
    expect(growth(before, after, 'llm_replies_total', { status: 'failed' })).toBe(1);
    expect(growth(before, after, 'llm_upstream_errors_total', { code: 'upstream_rate_limited' })).toBe(1);
    expect(growth(before, after, 'llm_upstream_retries_total')).toBe(2);
    expect(growth(before, after, 'http_requests_total', { method: 'POST', route: '/v1/chat/completions', status: '200' })).toBe(2);
    expect(sampleValue(after, 'llm_stream_readers_active')).toBe(0);
  });
});

describe('labels', () => {
  test('routes are patterns, also for requests refused before their route ran; no id of a chat, key or request is a label', async () => {
    const chatId = randomUUID();
    const before = await scrape();
    upstream.enqueue({ kind: 'stream', content: ['ok'] });
    await (await startTurn(chatId)).readToEnd();
    expect((await call(service.url, 'GET', `/api/chats/${chatId}`, auth)).status).toBe(200);
    expect((await call(service.url, 'GET', `/api/chats/${chatId}`)).status).toBe(401);
    expect((await call(service.url, 'GET', `/api/chats/${chatId}/messages?limit=2`, auth)).status).toBe(200);
    expect((await call(service.url, 'PUT', `/api/chats/${chatId}`, auth)).status).toBe(405);
    expect((await call(service.url, 'GET', `/nothing/${chatId}`)).status).toBe(404);
    const badJson = await fetch(`${service.url}/api/chat`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"chatId":' });
    expect(badJson.status).toBe(400);
    expect((await call(service.url, 'POST', '/v1/chat/completions', auth, { messages: 'no' })).status).toBe(400);
    const after = await scrape();

    const requests = (route: string, method: string, status: string) => growth(before, after, 'http_requests_total', { method, route, status });
    expect(requests('/api/chats/:chatId', 'GET', '200')).toBe(1);
    expect(requests('/api/chats/:chatId', 'GET', '401')).toBe(1);
    expect(requests('/api/chats/:chatId/messages', 'GET', '200')).toBe(1);
    expect(requests('/api/chats/:chatId', 'PUT', '405')).toBe(1);
    expect(requests('unmatched', 'GET', '404')).toBe(1);
    expect(requests('/api/chat', 'POST', '400')).toBe(1);
    expect(requests('/v1/chat/completions', 'POST', '400')).toBe(1);

    expect(after).not.toContain(chatId);
    const routes = new Set(parseSamples(after).filter((sample) => sample.name === 'http_requests_total').map((sample) => sample.labels.route));
    for (const route of routes) expect(route).toMatch(/^(\/[a-z0-9/:._-]*|unmatched)$/i);
    // No label value anywhere looks like an id (UUIDs, key ids).
    for (const sample of parseSamples(after)) {
      for (const value of Object.values(sample.labels)) expect(value).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}|lss_/);
    }
  });

  test("prom-client's process and Node.js metrics are there", async () => {
    const text = await scrape();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(sampleValue(text, name)).toBeGreaterThanOrEqual(0);
    }
    for (const status of ['completed', 'cancelled', 'interrupted', 'failed']) expect(sampleValue(text, 'llm_replies_total', { status })).toBeDefined();
    expect(text).toContain('# TYPE gen_ai_server_time_to_first_token_seconds histogram');
    expect(text).toContain('# TYPE llm_generations_active gauge');
  });
});

describe('the Grafana dashboard', () => {
  test('every series its queries use is one the service exposes, with the labels they filter or group by', async () => {
    const dashboard = readFileSync(path.join(PROJECT_ROOT, 'deploy', 'grafana', 'llm-streaming-service.json'), 'utf8');
    const queries: string[] = [];
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(collect);
      else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if ((key === 'expr' || key === 'query' || key === 'definition') && typeof value === 'string') queries.push(value);
          else collect(value);
        }
      }
    };
    collect(JSON.parse(dashboard));
    const used = new Set(queries.flatMap((query) => query.match(/\b(?:gen_ai|llm|http|process|nodejs)_[a-z0-9_]+/g) ?? []));
    // The panels the issue asks for are there.
    for (const name of ['gen_ai_server_time_to_first_token_seconds_bucket', 'gen_ai_usage_output_tokens_total', 'llm_generations_active', 'llm_upstream_errors_total']) {
      expect(used).toContain(name);
    }
    const samples = parseSamples(await scrape());
    const exposed = new Set(samples.map((sample) => sample.name));
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);
    // Labels the queries group or filter by exist on the series they use.
    const labelsOf = (name: string) => new Set(samples.filter((sample) => sample.name === name).flatMap((sample) => Object.keys(sample.labels)));
    for (const query of queries) {
      for (const [, name, labels] of query.matchAll(/\b((?:gen_ai|llm|http)_[a-z0-9_]+)\{([^}]*)\}/g)) {
        for (const [, label] of labels!.matchAll(/([a-z_]+)\s*(?:=~|!=|!~|=)/g)) {
          if (label === 'job' || label === 'instance') continue; // added by Prometheus
          expect({ query, label, known: labelsOf(name!).has(label!) }).toEqual({ query, label, known: true });
        }
      }
    }
  });
});

describe('who may scrape', () => {
  test('with no token: a peer on this machine, with no credentials; a request through a proxy is refused with 403', async () => {
    await scrape(service.url, {});
    // An API key is not needed, nor looked at.
    await scrape(service.url, { authorization: 'Bearer not-a-key' });
    for (const header of [{ 'x-forwarded-for': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }] as Array<Record<string, string>>) {
      const refused = await call(service.url, 'GET', '/metrics', header);
      expect({ status: refused.status, body: refused.body }).toEqual({
        status: 403,
        body: { error: { code: 'forbidden', message: 'Metrics are served only to loopback and private networks; set [metrics] token to scrape from elsewhere.' } },
      });
    }
    expect((await call(service.url, 'POST', '/metrics')).status).toBe(405);
  });

  test('loopback and private networks, and nothing else, count as where scrapers live', () => {
    const inside = ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.254', '192.168.1.20', '::ffff:192.168.1.20', 'fc00::1', 'fd12:3456::9'];
    const outside = ['8.8.8.8', '172.15.255.255', '172.32.0.1', '192.169.0.1', '11.0.0.1', '203.0.113.9', '::ffff:8.8.8.8', '2001:db8::1', 'fe80::1', 'fe00::1', '', undefined];
    expect(inside.filter((address) => !isPrivateAddress(address))).toEqual([]);
    expect(outside.filter((address) => isPrivateAddress(address))).toEqual([]);
  });

  test('with [metrics] token: only that bearer token, from anywhere', async () => {
    const guarded = await startTestService({ upstream, auth: true, environment: { METRICS_TOKEN: 'scrape-secret-1' } });
    try {
      const apiKey = (await guarded.keys!.create('app')).key;
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${apiKey}` }, { authorization: 'Basic c2NyYXBlLXNlY3JldC0x' }] as Array<Record<string, string>>) {
        const refused = await call(guarded.url, 'GET', '/metrics', headers);
        expect({ status: refused.status, code: refused.body.error.code, challenge: refused.headers.get('www-authenticate') }).toEqual({
          status: 401,
          code: 'unauthorized',
          challenge: 'Bearer realm="metrics"',
        });
      }
      await scrape(guarded.url, { authorization: 'Bearer scrape-secret-1' });
      await scrape(guarded.url, { authorization: 'Bearer scrape-secret-1', 'x-forwarded-for': '203.0.113.9' });
    } finally {
      await guarded.close();
    }
  });

  test('[metrics] enabled = false: no /metrics, and the API is unchanged', async () => {
    const plain = await startTestService({ upstream, environment: { METRICS_ENABLED: 'false' } });
    try {
      const missing = await call(plain.url, 'GET', '/metrics');
      expect({ status: missing.status, code: missing.body.error.code }).toEqual({ status: 404, code: 'not_found' });
      upstream.enqueue({ kind: 'stream', content: ['Still', ' here'] });
      const text = await (await openSse(`${plain.url}/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] }),
      })).readToEnd();
      expect(text).toContain('"delta":" here"');
    } finally {
      await plain.close();
    }
  });
});

describe('following a turn through the logs', () => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

  test('the request line and the reply-ended line carry the same request id and message id; the trace context reaches the upstream and the log', async () => {
    const chatId = randomUUID();
    const requestId = `turn-${randomUUID()}`;
    upstream.enqueue({ kind: 'stream', content: ['Traced'] });
    const text = await (await startTurn(chatId, { 'x-request-id': requestId, traceparent, tracestate: 'congo=t61rcWkgMzE' })).readToEnd();
    const messageId = JSON.parse(parseSse(text)[0]!.data).messageId as string;
    const upstreamHeaders = upstream.requests.at(-1)!.headers;
    expect({ traceparent: upstreamHeaders.traceparent, tracestate: upstreamHeaders.tracestate }).toEqual({ traceparent, tracestate: 'congo=t61rcWkgMzE' });

    const requestLine = await eventually(() => logLines().find((line) => line.requestId === requestId && line.msg === 'request completed'));
    const replyLine = logLines().find((line) => line.requestId === requestId && line.msg === 'reply ended');
    expect(requestLine).toMatchObject({ requestId, messageId, traceparent, url: '/api/chat', status: 200 });
    expect(replyLine).toMatchObject({ requestId, messageId, chatId, traceId: '0af7651916cd43dd8448eb211c80319c', status: 'completed' });
    // One grep for the message id finds both.
    expect(service.logs.filter((line) => line.includes(messageId)).map((line) => JSON.parse(line).msg)).toEqual(expect.arrayContaining(['reply ended', 'request completed']));
  });

  test('a resume names the reply it streamed', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: Array.from({ length: 20 }, (_unused, index) => `r${index} `), delayMs: 20 });
    const turn = await startTurn(chatId);
    const first = await turn.readUntil((text) => text.includes('"delta"'));
    const messageId = JSON.parse(parseSse(first)[0]!.data).messageId as string;
    const requestId = `resume-${randomUUID()}`;
    await (await openSse(`${service.url}/api/chat/${chatId}/stream`, { headers: { ...auth, 'x-request-id': requestId } })).readToEnd();
    await turn.readToEnd();
    expect(await eventually(() => logLines().find((line) => line.requestId === requestId && line.msg === 'request completed'))).toMatchObject({ messageId });
  });

  test('/v1 passes the trace context on too; a malformed traceparent is not passed on or logged', async () => {
    upstream.enqueue({ kind: 'stream', content: ['ok'] });
    await call(service.url, 'POST', '/v1/chat/completions', { ...auth, traceparent }, { messages: [{ role: 'user', content: 'Hi' }] });
    expect(upstream.requests.at(-1)!.headers.traceparent).toBe(traceparent);
    for (const malformed of ['00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'garbage']) {
      const requestId = `bad-trace-${randomUUID()}`;
      upstream.enqueue({ kind: 'stream', content: ['ok'] });
      await (await startTurn(randomUUID(), { traceparent: malformed, tracestate: 'congo=1', 'x-request-id': requestId })).readToEnd();
      const sent = upstream.requests.at(-1)!.headers;
      expect({ traceparent: sent.traceparent, tracestate: sent.tracestate }).toEqual({ traceparent: undefined, tracestate: undefined });
      const line = await eventually(() => logLines().find((entry) => entry.requestId === requestId && entry.msg === 'request completed'));
      expect(line.traceparent).toBeUndefined();
    }
  });
});
