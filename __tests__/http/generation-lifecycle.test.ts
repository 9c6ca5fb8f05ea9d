import { randomUUID } from 'node:crypto';
import { DefaultChatTransport, readUIMessageStream, type UIMessage } from 'ai';
import { eventually, getPath, openChatStream, openSse, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { parseParts, parseSse, rebuildText } from '../support/sse';
import { describeEachEngine } from '../support/test-engines';
import { startTestService, type TestService, type TestServiceOptions } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  await service.close();
  await upstream.close();
});

async function start(configToml = '', options: TestServiceOptions = {}) {
  service = await startTestService({ upstream, configToml, ...options });
}

const words = (count: number) => Array.from({ length: count }, (_, index) => `w${index} `);

interface ReplyRow {
  id: string;
  content: string;
  status: string;
  finishReason: string | null;
}

async function reply(chatId: string): Promise<ReplyRow | undefined> {
  const [row] = await service.query<ReplyRow>(
    `SELECT "id", "content", "status", "finishReason" FROM "Message" WHERE "chatId" = ? AND "role" = 'assistant'`,
    chatId,
  );
  return row;
}

/** The chat's reply once `holds` is true of it. */
function replyWhen(chatId: string, holds: (row: ReplyRow) => boolean) {
  return eventually(async () => {
    const row = await reply(chatId);
    return row && holds(row) ? row : undefined;
  });
}

function settledReply(chatId: string) {
  return replyWhen(chatId, (row) => row.status !== 'streaming');
}

describeEachEngine(() => {
  describe('resume: GET /api/chat/:chatId/stream', () => {
    test('the AI SDK transport reconnects after a dropped connection and rebuilds exactly the full reply', async () => {
      await start();
      const chatId = randomUUID();
      const content = words(30);
      upstream.enqueue({ kind: 'stream', content, delayMs: 15, usage: { prompt_tokens: 9, completion_tokens: 30, total_tokens: 39 } });
      const first = await openChatStream(service.url, userTurn(chatId, 'Count'));
      await first.readUntil((text) => text.includes('"delta":"w3 "'));
      first.hangUp();

      const transport = new DefaultChatTransport<UIMessage>({ api: `${service.url}/api/chat` });
      const stream = await transport.reconnectToStream({ chatId });
      expect(stream).not.toBeNull();
      let message: UIMessage | undefined;
      for await (const update of readUIMessageStream({ stream: stream!, terminateOnError: true })) message = update;

      expect(message).toEqual({
        id: (await reply(chatId))!.id,
        role: 'assistant',
        metadata: {
          contextMessages: 2,
          droppedMessages: 0,
          promptTokensEstimate: 18,
          usage: { promptTokens: 9, completionTokens: 30, totalTokens: 39 },
          usageEstimated: false,
          model: 'gpt-4o',
          timeToFirstTokenMs: expect.any(Number),
          durationMs: expect.any(Number),
        },
        parts: [{ type: 'text', text: content.join(''), state: 'done' }],
      });
      expect(await settledReply(chatId)).toMatchObject({ content: content.join(''), status: 'completed', finishReason: 'stop' });
    });

    test('with Last-Event-ID, joins with no gap and no repeat; several clients can follow at once', async () => {
      await start();
      const chatId = randomUUID();
      const content = words(40);
      upstream.enqueue({ kind: 'stream', content, delayMs: 10 });
      const first = await openChatStream(service.url, userTurn(chatId, 'Count'));
      const before = await first.readUntil((text) => text.includes('"delta":"w5 "'));
      first.hangUp();
      const seen = parseSse(before);
      const lastId = seen.at(-1)!.id!;

      const resumed = await openSse(`${service.url}/api/chat/${chatId}/stream`, { headers: { 'last-event-id': lastId } });
      const watcher = await openSse(`${service.url}/api/chat/${chatId}/stream`);
      expect(resumed.response.status).toBe(200);
      for (const header of ['content-type', 'cache-control', 'x-accel-buffering', 'x-vercel-ai-ui-message-stream']) {
        expect(resumed.response.headers.get(header)).toBe(first.response.headers.get(header));
      }
      const rest = parseSse(await resumed.readToEnd());
      const all = parseSse(await watcher.readToEnd());

      const joined = [...seen, ...rest];
      expect(joined.map((event) => Number(event.id))).toEqual(joined.map((_, index) => index + 1));
      expect(joined).toEqual(all);
      expect(rebuildText(all.map((event) => `id: ${event.id}\ndata: ${event.data}\n\n`).join(''))).toBe(content.join(''));
      expect(all.at(-1)!.data).toBe('[DONE]');
    });

    test.each<[string, Record<string, string>]>([
      ['an unknown chat', {}],
      ['a Last-Event-ID past the end', { 'last-event-id': '999' }],
    ])('answers 204 for %s when nothing is generating', async (_name, headers) => {
      await start();
      const response = await fetch(`${service.url}/api/chat/${randomUUID()}/stream`, { headers });
      expect(response.status).toBe(204);
      expect(await response.text()).toBe('');
    });

    test('answers 204 once the reply has finished, and keeps no parts of it', async () => {
      await start();
      const chatId = randomUUID();
      const finished = await openChatStream(service.url, userTurn(chatId, 'Hi'));
      await finished.readToEnd();
      // The reply is released right after its last frame is written.
      let status = 0;
      for (let attempt = 0; attempt < 50 && status !== 204; attempt += 1) {
        status = (await fetch(`${service.url}/api/chat/${chatId}/stream`)).status;
      }
      expect(status).toBe(204);
      expect(await service.chat.activeGeneration(chatId, 'local')).toBeUndefined();
    });

    test.each<[string, string, Record<string, string>]>([
      ['a malformed chat id', '/api/chat/a.b/stream', {}],
      ['a malformed Last-Event-ID', `/api/chat/${randomUUID()}/stream`, { 'last-event-id': 'abc' }],
    ])('answers 400 for %s', async (_name, path, headers) => {
      await start();
      const response = await fetch(`${service.url}${path}`, { headers });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    });
  });

  describe('cancel: DELETE /api/chat/:chatId/stream', () => {
    test('stops the upstream, ends every attached stream within a second and keeps the partial reply as cancelled', async () => {
      await start();
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['Half ', 'a ', 'reply'], ending: 'stall', cutAfter: 2 });
      const poster = await openChatStream(service.url, userTurn(chatId, 'Go'));
      await poster.readUntil((text) => text.includes('"delta":"a "'));
      const follower = await openSse(`${service.url}/api/chat/${chatId}/stream`);
      await follower.readUntil((text) => text.includes('"delta":"a "'));

      const cancelledAt = Date.now();
      const cancel = await fetch(`${service.url}/api/chat/${chatId}/stream`, { method: 'DELETE' });
      const [posterText, followerText] = await Promise.all([poster.readToEnd(), follower.readToEnd()]);
      expect(Date.now() - cancelledAt).toBeLessThan(1000);

      const row = (await reply(chatId))!;
      expect(cancel.status).toBe(200);
      expect(await cancel.json()).toEqual({ status: 'cancelled', messageId: row.id });
      for (const text of [posterText, followerText]) {
        expect(parseParts(text).slice(-2)).toEqual([
          { type: 'text-end', id: 'text-0' },
          { type: 'abort', reason: 'cancelled' },
        ]);
        expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      }
      expect(await upstream.clientGone(0)).toBeLessThan(cancelledAt + 1000);
      expect(row).toMatchObject({ content: 'Half a ', status: 'cancelled', finishReason: null });
      const history = (await getPath(service.url, `/api/chats/${chatId}/messages`)).json();
      expect(history.messages[1]).toMatchObject({ status: 'cancelled', content: 'Half a ' });

      const again = await fetch(`${service.url}/api/chat/${chatId}/stream`, { method: 'DELETE' });
      expect(again.status).toBe(204);
      expect(await again.text()).toBe('');
    });

    test('answers 204 when nothing is generating', async () => {
      await start();
      const response = await fetch(`${service.url}/api/chat/${randomUUID()}/stream`, { method: 'DELETE' });
      expect(response.status).toBe(204);
    });

    test('a new turn can start right after a cancel', async () => {
      await start();
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['Stuck'], ending: 'stall', cutAfter: 1 });
      const poster = await openChatStream(service.url, userTurn(chatId, 'Go'));
      await poster.readUntil((text) => text.includes('"delta"'));
      await fetch(`${service.url}/api/chat/${chatId}/stream`, { method: 'DELETE' });
      const next = await openChatStream(service.url, userTurn(chatId, 'Again'));
      expect(next.response.status).toBe(200);
      expect(rebuildText(await next.readToEnd())).toBe('Hello world');
    });
  });

  describe('disconnect grace', () => {
    test('when nobody re-attaches within the grace period, the upstream is aborted and the reply kept as interrupted', async () => {
      await start('[streaming]\nresume_grace_seconds = 0.4\n');
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['Left ', 'alone'], ending: 'stall', cutAfter: 1 });
      const poster = await openChatStream(service.url, userTurn(chatId, 'Go'));
      await poster.readUntil((text) => text.includes('"delta"'));
      const leftAt = Date.now();
      poster.hangUp();

      const abortedAt = await upstream.clientGone(0);
      expect(abortedAt - leftAt).toBeGreaterThanOrEqual(350);
      expect(abortedAt - leftAt).toBeLessThan(1400);
      expect(await settledReply(chatId)).toMatchObject({ content: 'Left ', status: 'interrupted' });
    });

    test('a client that re-attaches within the grace period gets the whole reply, and it completes', async () => {
      await start('[streaming]\nresume_grace_seconds = 5\n');
      const chatId = randomUUID();
      const content = words(20);
      upstream.enqueue({ kind: 'stream', content, delayMs: 20 });
      const poster = await openChatStream(service.url, userTurn(chatId, 'Go'));
      await poster.readUntil((text) => text.includes('"delta":"w1 "'));
      poster.hangUp();
      await new Promise((resolve) => setTimeout(resolve, 100));

      const back = await openSse(`${service.url}/api/chat/${chatId}/stream`);
      expect(rebuildText(await back.readToEnd())).toBe(content.join(''));
      expect(await settledReply(chatId)).toMatchObject({ content: content.join(''), status: 'completed' });
    });
  });

  describe('heartbeat and idle timeout', () => {
    test('heartbeat comments flow while the upstream is silent, then the idle timeout fails the reply', async () => {
      await start('[streaming]\nheartbeat_seconds = 0.1\nupstream_idle_timeout_seconds = 0.7\n');
      const chatId = randomUUID();
      // Silent from the start: not a single token.
      upstream.enqueue({ kind: 'stream', content: ['never sent'], ending: 'stall', cutAfter: 0 });
      const stream = await openChatStream(service.url, userTurn(chatId, 'Hello?'));
      const text = await stream.readToEnd();

      const pings = text.split(': ping\n\n').length - 1;
      expect(pings).toBeGreaterThanOrEqual(4);
      expect(text.replaceAll(': ping\n\n', '')).toBe(
        `id: 1\ndata: {"type":"start","messageId":"${(await reply(chatId))!.id}","messageMetadata":{"contextMessages":2,"droppedMessages":0,"promptTokensEstimate":19}}\n\n` +
          'id: 2\ndata: {"type":"text-start","id":"text-0"}\n\n' +
          'id: 3\ndata: {"type":"text-end","id":"text-0"}\n\n' +
          'id: 4\ndata: {"type":"error","errorText":"The model provider stopped sending."}\n\n' +
          'id: 5\ndata: [DONE]\n\n',
      );
      expect(await reply(chatId)).toMatchObject({ content: '', status: 'failed', finishReason: 'error' });
      await upstream.clientGone(0);
    });

    test('no heartbeat is sent while frames keep flowing', async () => {
      await start('[streaming]\nheartbeat_seconds = 0.2\n');
      upstream.enqueue({ kind: 'stream', content: words(20), delayMs: 30 });
      const stream = await openChatStream(service.url, userTurn(randomUUID(), 'Go'));
      expect(await stream.readToEnd()).not.toContain(': ping');
    });
  });

  describe('checkpoints', () => {
    test('the partial text is saved while the reply streams', async () => {
      await start('[streaming]\ncheckpoint_interval_seconds = 0.1\n');
      const chatId = randomUUID();
      upstream.enqueue({ kind: 'stream', content: ['Saved ', 'early'], ending: 'stall', cutAfter: 1 });
      const stream = await openChatStream(service.url, userTurn(chatId, 'Go'));
      await stream.readUntil((text) => text.includes('"delta"'));
      expect(await replyWhen(chatId, (row) => row.content === 'Saved ')).toMatchObject({
        content: 'Saved ',
        status: 'streaming',
      });
      stream.hangUp();
    });

    test('replies left streaming by a dead process are marked interrupted at start-up, keeping their text', async () => {
      await start();
      const chatId = randomUUID();
      const first = await openChatStream(service.url, userTurn(chatId, 'Hi'));
      await first.readToEnd();
      await service.execute(`UPDATE "Message" SET "status" = 'streaming', "content" = 'cut off' WHERE "role" = 'assistant'`);
      await service.stop();
      const restarted = await startTestService({ upstream, reuseDatabase: service.databaseUrl });
      try {
        expect(await restarted.query(`SELECT "content", "status" FROM "Message" WHERE "role" = 'assistant'`)).toEqual([
          { content: 'cut off', status: 'interrupted' },
        ]);
        expect(restarted.logs.some((line) => line.includes('"abandonedReplies":1'))).toBe(true);
      } finally {
        await restarted.close();
      }
    });
  });
});
