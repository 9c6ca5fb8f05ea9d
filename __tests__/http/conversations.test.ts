import { randomUUID } from 'node:crypto';
import { eventually, getPath, openChatStream, postChat, userTurn } from '../support/chat-client';
import { azureErrors, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { parseParts } from '../support/sse';
import { describeEachEngine } from '../support/test-engines';
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

async function send(chatId: string, content: string, reply: string[] = ['Ok'], systemPrompt?: string, target = service) {
  upstream.enqueue({ kind: 'stream', content: reply });
  const exchange = await postChat(target.url, userTurn(chatId, content, systemPrompt));
  expect(exchange.status).toBe(200);
  return exchange;
}

async function request(method: string, path: string, body?: unknown) {
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

describeEachEngine(() => {
  describe('pagination', () => {
    test('walks a 120-message chat and a 60-chat list exactly once each', async () => {
      const longChat = randomUUID();
      for (let turn = 1; turn <= 60; turn += 1) await send(longChat, `Q${turn}`, [`A${turn}`]);
      for (let chat = 1; chat <= 59; chat += 1) await send(randomUUID(), `Chat ${chat}`);

      const storedOrder = (await service.query<{ id: string }>('SELECT "id" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"', longChat)).map((row) => row.id);
      expect(storedOrder).toHaveLength(120);
      const pages: string[][] = [];
      let before: string | null = null;
      do {
        const query: string = before ? `?limit=25&before=${before}` : '?limit=25';
        const page = (await getPath(service.url, `/api/chats/${longChat}/messages${query}`)).json();
        pages.push(page.messages.map((message: { id: string }) => message.id));
        before = page.nextBefore;
      } while (before);
      expect(pages.map((page) => page.length)).toEqual([25, 25, 25, 25, 20]);
      expect(pages.reverse().flat()).toEqual(storedOrder);

      const chatOrder = (await service.query<{ id: string }>('SELECT "id" FROM "Chat" ORDER BY "updatedAt" DESC, "id" DESC')).map((row) => row.id);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pageCount = 0;
      do {
        const query: string = cursor ? `?limit=7&cursor=${cursor}` : '?limit=7';
        const page = (await getPath(service.url, `/api/chats${query}`)).json();
        seen.push(...page.chats.map((chat: { chatId: string }) => chat.chatId));
        cursor = page.nextCursor;
        pageCount += 1;
      } while (cursor);
      expect(pageCount).toBe(9);
      expect(seen).toEqual(chatOrder);
      expect(new Set(seen).size).toBe(60);
      expect(seen[seen.length - 1]).toBe(longChat);
    });

    test('the default page is the whole history of a small chat, and list items describe each chat', async () => {
      const chatId = randomUUID();
      await send(chatId, 'Hello there');
      upstream.enqueue(azureErrors.unauthorized());
      await postChat(service.url, userTurn(chatId, 'Again'));
      const history = (await getPath(service.url, `/api/chats/${chatId}/messages`)).json();
      expect(history.messages.map((message: { content: string }) => message.content)).toEqual(['Hello there', 'Ok', 'Again', '']);
      expect(history.nextBefore).toBeNull();

      const list = (await getPath(service.url, '/api/chats')).json();
      expect(list).toEqual({
        chats: [
          {
            chatId,
            title: 'Hello there',
            createdAt: expect.any(String),
            updatedAt: expect.any(String),
            messageCount: 4,
            lastReplyStatus: 'failed',
          },
        ],
        nextCursor: null,
      });
    });

    test.each<[string, string]>([
      ['a limit of 0', '/api/chats?limit=0'],
      ['a limit over the maximum', '/api/chats?limit=101'],
      ['a limit that is not a number', '/api/chats?limit=ten'],
      ['a forged cursor', '/api/chats?cursor=bm90LWEtY3Vyc29y'],
      ['a before outside the id set', `/api/chats/${randomUUID()}/messages?before=not%20an%20id`],
      ['a format other than ui', `/api/chats/${randomUUID()}/messages?format=json`],
    ])('rejects %s with 400', async (_name, path) => {
      const answer = await getPath(service.url, path);
      expect(answer.status).toBe(400);
      expect(answer.json().error.code).toBe('invalid_request');
    });

    test('rejects a before from another chat', async () => {
      const first = randomUUID();
      const second = randomUUID();
      await send(first, 'One');
      await send(second, 'Two');
      const [other] = await service.query<{ id: string }>('SELECT "id" FROM "Message" WHERE "chatId" = ?', second);
      const answer = await getPath(service.url, `/api/chats/${first}/messages?before=${other!.id}`);
      expect(answer.status).toBe(400);
    });
  });

  describe('a chat', () => {
    test('is read, renamed and given a new system prompt, which the next turn uses', async () => {
      const chatId = randomUUID();
      await send(chatId, 'Hi', ['Ok'], 'You are a pirate.');

      expect((await request('GET', `/api/chats/${chatId}`)).body).toEqual({
        chatId,
        title: 'Hi',
        systemPrompt: 'You are a pirate.',
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
        messageCount: 2,
        lastReplyStatus: 'completed',
      });
      const patched = await request('PATCH', `/api/chats/${chatId}`, { title: '  Pirate talk ', systemPrompt: 'You are a poet.' });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ title: 'Pirate talk', systemPrompt: 'You are a poet.' });

      await send(chatId, 'And now?');
      expect(upstream.requests.at(-1)!.body.messages[0]).toEqual({ role: 'system', content: 'You are a poet.' });
      const cleared = await request('PATCH', `/api/chats/${chatId}`, { systemPrompt: null });
      expect(cleared.body.systemPrompt).toBeNull();
      await send(chatId, 'Default?');
      expect(upstream.requests.at(-1)!.body.messages[0]).toEqual({ role: 'system', content: 'You are a helpful assistant.' });
    });

    test.each<[string, unknown]>([
      ['an empty body', {}],
      ['an empty title', { title: '   ' }],
      ['an unknown field', { name: 'x' }],
      ['a title that is not a string', { title: 5 }],
      ['a title holding U+0000', { title: 'a\u0000b' }],
      ['a system prompt holding U+0000', { systemPrompt: 'a\u0000b' }],
    ])('PATCH with %s is refused with 400, and the chat is left as it was', async (_name, body) => {
      const chatId = randomUUID();
      await send(chatId, 'Hi');
      const before = (await request('GET', `/api/chats/${chatId}`)).body;
      const answer = await request('PATCH', `/api/chats/${chatId}`, body);
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe('invalid_request');
      expect((await request('GET', `/api/chats/${chatId}`)).body).toEqual(before);
    });

    test.each<[string, string]>([
      ['GET', ''],
      ['PATCH', ''],
      ['DELETE', ''],
      ['GET', '/messages'],
    ])('%s on an unknown chat%s answers 404', async (method, suffix) => {
      const answer = await request(method, `/api/chats/${randomUUID()}${suffix}`, method === 'PATCH' ? { title: 'x' } : undefined);
      expect(answer.status).toBe(404);
      expect(answer.body.error.code).toBe('chat_not_found');
    });

    test('DELETE during a generation cancels it and leaves no rows', async () => {
      const chatId = randomUUID();
      const keep = randomUUID();
      await send(keep, 'Keep me');
      upstream.enqueue({ kind: 'stream', content: ['Partial'], ending: 'stall', cutAfter: 1 });
      const stream = await openChatStream(service.url, userTurn(chatId, 'Doomed'));
      await stream.readUntil((text) => text.includes('"delta"'));

      const deleted = await request('DELETE', `/api/chats/${chatId}`);

      expect(deleted).toEqual({ status: 204, body: undefined });
      expect(parseParts(await stream.readToEnd()).at(-1)).toEqual({ type: 'abort', reason: 'cancelled' });
      await upstream.clientGone(upstream.requests.length - 1);
      expect(await service.query('SELECT "id" FROM "Chat" WHERE "id" = ?', chatId)).toEqual([]);
      // The chat's messages are removed in the background after the 204, in batches.
      await eventually(async () => ((await service.query('SELECT "id" FROM "Message" WHERE "chatId" = ?', chatId)).length === 0 ? true : undefined));
      expect(await service.query('SELECT COUNT(*) AS count FROM "Message" WHERE "chatId" = ?', keep)).toEqual([{ count: 2 }]);
      expect((await request('GET', `/api/chats/${chatId}`)).status).toBe(404);
    });
  });

  describe('titles', () => {
    test('a chat is titled from the start of its first user message, and a PATCH overrides it', async () => {
      const chatId = randomUUID();
      await send(chatId, '  Plan a   trip to\nLisbon for three days with kids, museums and beaches included please  ');
      await send(chatId, 'Another message');
      expect((await request('GET', `/api/chats/${chatId}`)).body.title).toBe('Plan a trip to Lisbon for three days with kids, museums and…');
      await request('PATCH', `/api/chats/${chatId}`, { title: 'Lisbon' });
      expect((await request('GET', `/api/chats/${chatId}`)).body.title).toBe('Lisbon');
    });

    test('with generate_titles, the model titles the chat after the first reply, which it does not delay', async () => {
      const titled = await startTestService({ upstream, configToml: '[chat]\ngenerate_titles = true\n' });
      try {
        const chatId = randomUUID();
        upstream.enqueue({ kind: 'stream', content: ['Arr, ', 'it be buried.'] }, { kind: 'stream', content: ['"Buried Treasure."'] });
        const exchange = await postChat(titled.url, userTurn(chatId, 'Where is the treasure?'));
        expect(parseParts(exchange.text).at(-1)).toMatchObject({ type: 'finish' });

        const title = await eventually(async () => {
          const [row] = await titled.query<{ title: string }>('SELECT "title" FROM "Chat" WHERE "id" = ?', chatId);
          return row?.title === 'Buried Treasure' ? row.title : undefined;
        });
        expect(title).toBe('Buried Treasure');
        const titleRequest = upstream.requests[1]!.body;
        expect(titleRequest.max_tokens).toBe(20);
        expect(titleRequest.messages[1]).toEqual({ role: 'user', content: 'User: Where is the treasure?\n\nAssistant: Arr, it be buried.' });

        // Only a chat's first reply is titled, and a user's title is never replaced.
        upstream.enqueue({ kind: 'stream', content: ['More'] });
        await postChat(titled.url, userTurn(chatId, 'And then?'));
        expect(upstream.requests).toHaveLength(3);
      } finally {
        await titled.close();
      }
    });
  });
});
