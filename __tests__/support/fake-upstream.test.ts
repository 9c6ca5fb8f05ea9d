import * as http from 'node:http';
import { azureErrors, startFakeUpstream, type FakeUpstream } from './fake-upstream';

const API_VERSION = '2024-10-21';

function classicPath(deployment: string): string {
  return `/openai/deployments/${deployment}/chat/completions?api-version=${API_VERSION}`;
}

function post(
  fake: FakeUpstream,
  path: string,
  body: unknown,
  headers: Record<string, string> = { 'api-key': fake.apiKey },
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`${fake.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal,
  });
}

const streamBody = {
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
  stream_options: { include_usage: true },
};

describe('fake upstream', () => {
  let fake: FakeUpstream;

  beforeEach(async () => {
    fake = await startFakeUpstream();
  });

  afterEach(async () => {
    await fake.close();
  });

  it('streams the Azure frame sequence, with usage when asked', async () => {
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const text = await res.text();

    // id and created vary per response; take them from the role frame and check everything else exactly.
    const second = JSON.parse(text.split('\n\n')[1]!.slice('data: '.length)) as { id: string; created: number };
    expect(second.id).toMatch(/^chatcmpl-/);
    const { id, created } = second;
    const safe = { filtered: false, severity: 'safe' };
    const filters = { hate: safe, self_harm: safe, sexual: safe, violence: safe };
    const head = { id, object: 'chat.completion.chunk', created, model: 'gpt-4o-2024-11-20', system_fingerprint: 'fp_fake' };
    const frames = [
      { choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: filters }] },
      { ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, finish_reason: null, logprobs: null, content_filter_results: {} }], usage: null },
      { ...head, choices: [{ index: 0, delta: { content: 'Hello' }, finish_reason: null, logprobs: null, content_filter_results: filters }], usage: null },
      { ...head, choices: [{ index: 0, delta: { content: ' world' }, finish_reason: null, logprobs: null, content_filter_results: filters }], usage: null },
      { ...head, choices: [{ index: 0, delta: {}, finish_reason: 'stop', logprobs: null, content_filter_results: {} }], usage: null },
      { ...head, choices: [], usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 } },
    ];
    expect(text).toBe(frames.map((f) => `data: ${JSON.stringify(f)}\n\n`).join('') + 'data: [DONE]\n\n');

    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({ method: 'POST', path: classicPath(fake.deployment), body: streamBody });
    expect(fake.requests[0]!.headers['api-key']).toBe(fake.apiKey);
  });

  it('omits Azure-only frames on the plain /v1 route and usage when not asked', async () => {
    const res = await post(fake, '/v1/chat/completions', { model: 'x', messages: [], stream: true }, { authorization: `Bearer ${fake.apiKey}` });
    const text = await res.text();
    expect(text).not.toContain('prompt_filter_results');
    expect(text).not.toContain('content_filter_results');
    expect(text).not.toContain('usage');
    expect(text.split('\n\n').filter(Boolean)).toHaveLength(5); // role, 2 content, finish, [DONE]
  });

  it('answers 401 without a key and does not consume the queue', async () => {
    fake.enqueue(azureErrors.serverError(503));
    const res = await post(fake, classicPath(fake.deployment), streamBody, {});
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('401');

    const v1 = await post(fake, '/openai/v1/chat/completions', { ...streamBody, model: fake.deployment }, { authorization: 'Bearer wrong' });
    expect(v1.status).toBe(401);
    await v1.arrayBuffer();

    const ok = await post(fake, classicPath(fake.deployment), streamBody);
    expect(ok.status).toBe(503); // the queued script went to the first authorised request
    await ok.arrayBuffer();
    expect(fake.requests).toHaveLength(3);
  });

  it('answers 404 DeploymentNotFound for an unknown deployment', async () => {
    const res = await post(fake, classicPath('nope'), streamBody);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('DeploymentNotFound');
  });

  it('answers 404 Resource not found for a doubled slash or a missing api-version', async () => {
    const doubled = await post(fake, `/${classicPath(fake.deployment)}`, streamBody);
    expect(doubled.status).toBe(404);
    expect(await doubled.json()).toEqual({ error: { code: '404', message: 'Resource not found' } });

    const noVersion = await post(fake, `/openai/deployments/${fake.deployment}/chat/completions`, streamBody);
    expect(noVersion.status).toBe(404);
    expect(await noVersion.json()).toEqual({ error: { code: '404', message: 'Resource not found' } });
    expect(fake.requests.map((r) => r.path)).toEqual([`/${classicPath(fake.deployment)}`, `/openai/deployments/${fake.deployment}/chat/completions`]);
  });

  it('sends retry headers with rateLimited', async () => {
    fake.enqueue(azureErrors.rateLimited(2, 1500));
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(res.headers.get('retry-after-ms')).toBe('1500');
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: '429',
      message: expect.stringContaining('Please retry after 2 seconds') as unknown as string,
    });
  });

  it("'reset' delivers the frames before the cut, then the body read rejects", async () => {
    fake.enqueue({ kind: 'stream', content: ['a', 'b', 'c'], ending: 'reset', cutAfter: 2 });
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    const readAll = async (): Promise<void> => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        received += decoder.decode(value, { stream: true });
      }
    };
    await expect(readAll()).rejects.toThrow();
    expect(received).toContain('"content":"b"');
    expect(received).not.toContain('"content":"c"');
    expect(received).not.toContain('finish_reason":"stop');
    expect(received).not.toContain('[DONE]');
  });

  /** Reads `res` until `check` holds on the text so far, leaving the rest of the body unread. */
  async function readUntil(res: Response, check: (text: string) => boolean): Promise<string> {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    while (!check(received)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the body ended first: ${received}`);
      received += decoder.decode(value, { stream: true });
    }
    reader.releaseLock();
    return received;
  }

  it("'done-then-stall' sends the finish frame, usage and [DONE], then keeps the response open", async () => {
    fake.enqueue({ kind: 'stream', content: ['a'], ending: 'done-then-stall' });
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    const text = await readUntil(res, (received) => received.endsWith('data: [DONE]\n\n'));
    const frames = text.split('\n\n').filter(Boolean);
    expect(frames.slice(-3).map((f) => (f === 'data: [DONE]' ? f : JSON.parse(f.slice('data: '.length))))).toEqual([
      expect.objectContaining({ choices: [expect.objectContaining({ delta: {}, finish_reason: 'stop' })], usage: null }),
      expect.objectContaining({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 } }),
      'data: [DONE]',
    ]);
    expect(fake.activeStreams()).toBe(1);
  });

  it("'usage-then-stall' with usageInFinish puts the usage on the finish frame, sends no [DONE] and keeps the response open", async () => {
    fake.enqueue({ kind: 'stream', content: ['a', 'b'], ending: 'usage-then-stall', usageInFinish: true });
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    const text = await readUntil(res, (received) => received.includes('"finish_reason":"stop"'));
    const last = JSON.parse(text.split('\n\n').filter(Boolean).at(-1)!.slice('data: '.length)) as unknown;
    expect(last).toMatchObject({
      choices: [{ delta: {}, finish_reason: 'stop' }],
      usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
    });
    expect(fake.activeStreams()).toBe(1);
  });

  it("'done' with endDelayMs ends the response that long after [DONE]", async () => {
    fake.enqueue({ kind: 'stream', content: ['a'], endDelayMs: 200 });
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    let doneAt = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
      if (received.endsWith('data: [DONE]\n\n')) doneAt = Date.now();
    }
    expect(doneAt).toBeGreaterThan(0);
    expect(Date.now() - doneAt).toBeGreaterThanOrEqual(190);
  });

  it('a flood sends its text until exactly its byte count, then ends', async () => {
    fake.enqueue({ kind: 'flood', text: 'data: xy\n', bytes: 200_005 });
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = await res.text();
    expect(text).toBe('data: xy\n'.repeat(22_222) + 'data: xy\n'.slice(0, 7));
  });

  it('numbers connections: requests over one kept-alive connection share a number', async () => {
    // One socket for both, so the second request waits for the first to finish and reuses it.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (through: http.Agent | false) =>
      new Promise<void>((resolve, reject) => {
        const request = http.request(`${fake.url}${classicPath(fake.deployment)}`, {
          method: 'POST',
          agent: through,
          headers: { 'content-type': 'application/json', 'api-key': fake.apiKey },
        });
        request.on('response', (response) => response.resume().on('end', resolve));
        request.on('error', reject);
        request.end(JSON.stringify(streamBody));
      });
    await Promise.all([send(agent), send(agent)]);
    await send(false);
    agent.destroy();
    expect(fake.requests.map((r) => r.connection)).toEqual([1, 1, 2]);
  });

  it('clientGone resolves when the client aborts a stalled stream', async () => {
    fake.enqueue({ kind: 'stream', content: ['a', 'b'], ending: 'stall', cutAfter: 1 });
    const controller = new AbortController();
    const res = await post(fake, classicPath(fake.deployment), streamBody, { 'api-key': fake.apiKey }, controller.signal);
    const reader = res.body!.getReader();
    let received = '';
    while (!received.includes('"content":"a"')) {
      const { value } = await reader.read();
      received += new TextDecoder().decode(value);
    }
    expect(fake.activeStreams()).toBe(1);

    const before = Date.now();
    controller.abort();
    const goneAt = await fake.clientGone(0);
    expect(goneAt).toBeGreaterThanOrEqual(before);
    expect(fake.activeStreams()).toBe(0);
  });

  it('clientGone does not resolve for a completed request', async () => {
    const res = await post(fake, classicPath(fake.deployment), streamBody);
    await res.text();
    const outcome = await Promise.race([
      fake.clientGone(0).then(() => 'gone'),
      new Promise<string>((resolve) => setTimeout(() => resolve('pending'), 50)),
    ]);
    expect(outcome).toBe('pending');
  });
});
