/**
 * The AI SDK's chat client with its default transport and no adapter (what `useChat` runs): its
 * body `{ id, messages: UIMessage[], trigger, messageId? }` against the real service, with the
 * service keeping the history.
 */
import { randomUUID } from 'node:crypto';
import { AbstractChat, DefaultChatTransport, type ChatState, type ChatStatus, type UIMessage } from 'ai';
import { getPath, postChat } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { describeEachEngine } from '../support/test-engines';
import { startTestService, type TestService } from '../support/test-service';

const DEFAULT_PROMPT = 'You are a helpful assistant.';

/** The chat state `useChat` keeps in React, kept in a plain object. */
class PlainChatState implements ChatState<UIMessage> {
  status: ChatStatus = 'ready';
  error: Error | undefined = undefined;
  constructor(public messages: UIMessage[]) {}
  pushMessage = (message: UIMessage) => {
    this.messages = [...this.messages, message];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index: number, message: UIMessage) => {
    this.messages = this.messages.map((existing, at) => (at === index ? message : existing));
  };
  snapshot = <T>(thing: T): T => structuredClone(thing);
}

class PlainChat extends AbstractChat<UIMessage> {
  constructor(id: string, url: string, messages: UIMessage[] = [], headers: Record<string, string> = {}) {
    super({ id, transport: new DefaultChatTransport({ api: `${url}/api/chat`, headers }), state: new PlainChatState(messages) });
  }
}

let upstream: FakeUpstream;
let service: TestService;

afterEach(async () => {
  await service?.close();
  await upstream?.close();
});

async function start(auth = false): Promise<void> {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream, auth });
}

function rows(chatId: string) {
  return service.query<{ id: string; clientId: string | null; role: string; content: string; status: string }>(
    'SELECT "id", "clientId", "role", "content", "status" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"',
    chatId,
  );
}

/** What the upstream was asked, as role: content lines. */
function asked(index: number): string[] {
  return upstream.requests[index]!.body.messages.map((message: { role: string; content: string }) => `${message.role}: ${message.content}`);
}

function texts(chat: PlainChat): string[] {
  return chat.messages.map((message) => `${message.role}: ${message.parts.map((part) => (part.type === 'text' ? part.text : `[${part.type}]`)).join('')}`);
}

describeEachEngine(() => {
  test('send: the last message is the question, its id is kept, the reply shares the stored id', async () => {
    await start();
    const chatId = 'Xy7rT0aBcD3eFgH1'; // an id as the AI SDK generates them
    const chat = new PlainChat(chatId, service.url);
    upstream.enqueue({ kind: 'stream', content: ['Hel', 'lo!'] });
    await chat.sendMessage({ text: 'Hi there' });
    expect(chat.error).toBeUndefined();
    upstream.enqueue({ kind: 'stream', content: ['Fine.'] });
    await chat.sendMessage({ text: 'How are you?' });

    expect(texts(chat)).toEqual(['user: Hi there', 'assistant: Hello!', 'user: How are you?', 'assistant: Fine.']);
    const stored = await rows(chatId);
    expect(stored.map(({ role, content, status }) => ({ role, content, status }))).toEqual([
      { role: 'user', content: 'Hi there', status: 'completed' },
      { role: 'assistant', content: 'Hello!', status: 'completed' },
      { role: 'user', content: 'How are you?', status: 'completed' },
      { role: 'assistant', content: 'Fine.', status: 'completed' },
    ]);
    // The client's ids for its messages, the stored reply's for the replies.
    expect(stored.map((row) => row.clientId ?? row.id)).toEqual(chat.messages.map((message) => message.id));
    expect(stored[0]!.clientId).toBe(chat.messages[0]!.id);
    expect(stored[1]!.clientId).toBeNull();
    // The client sent its whole copy; the service read only the last message, with its own history.
    expect(upstream.requests[1]!.body.messages).toEqual([
      { role: 'system', content: DEFAULT_PROMPT },
      { role: 'user', content: 'Hi there' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'How are you?' },
    ]);
  });

  test('regenerate: the last reply is replaced, no user message is stored again', async () => {
    await start();
    const chatId = randomUUID();
    const chat = new PlainChat(chatId, service.url);
    upstream.enqueue({ kind: 'stream', content: ['First answer'] }, { kind: 'stream', content: ['Second answer'] });
    await chat.sendMessage({ text: 'Question' });
    const firstReplyId = chat.messages[1]!.id;
    await chat.regenerate();

    expect(chat.error).toBeUndefined();
    expect(texts(chat)).toEqual(['user: Question', 'assistant: Second answer']);
    const stored = await rows(chatId);
    expect(stored.map(({ role, content }) => `${role}: ${content}`)).toEqual(['user: Question', 'assistant: Second answer']);
    expect(stored[1]!.id).toBe(chat.messages[1]!.id);
    expect(stored[1]!.id).not.toBe(firstReplyId);
    expect(asked(1)).toEqual([`system: ${DEFAULT_PROMPT}`, 'user: Question']);
    expect((await service.query('SELECT "messageCount" FROM "Chat" WHERE "id" = ?', chatId))[0]).toEqual({ messageCount: 2 });
  });

  test('regenerate of an earlier reply removes it and what followed, as the client does', async () => {
    await start();
    const chatId = randomUUID();
    const chat = new PlainChat(chatId, service.url);
    upstream.enqueue({ kind: 'stream', content: ['A1'] }, { kind: 'stream', content: ['A2'] }, { kind: 'stream', content: ['A1 again'] });
    await chat.sendMessage({ text: 'Q1' });
    await chat.sendMessage({ text: 'Q2' });
    await chat.regenerate({ messageId: chat.messages[1]!.id });

    expect(texts(chat)).toEqual(['user: Q1', 'assistant: A1 again']);
    expect((await rows(chatId)).map(({ role, content }) => `${role}: ${content}`)).toEqual(['user: Q1', 'assistant: A1 again']);
    expect(asked(2)).toEqual([`system: ${DEFAULT_PROMPT}`, 'user: Q1']);
  });

  test('edit: the message is replaced, what followed it removed, and a reply generated', async () => {
    await start();
    const chatId = randomUUID();
    const chat = new PlainChat(chatId, service.url);
    upstream.enqueue({ kind: 'stream', content: ['A1'] }, { kind: 'stream', content: ['A2'] }, { kind: 'stream', content: ['A1 edited'] });
    await chat.sendMessage({ text: 'Q1' });
    await chat.sendMessage({ text: 'Q2' });
    const firstId = chat.messages[0]!.id;
    await chat.sendMessage({ text: 'Q1, reworded', messageId: firstId });

    expect(chat.error).toBeUndefined();
    expect(texts(chat)).toEqual(['user: Q1, reworded', 'assistant: A1 edited']);
    const stored = await rows(chatId);
    expect(stored.map(({ role, content }) => `${role}: ${content}`)).toEqual(['user: Q1, reworded', 'assistant: A1 edited']);
    expect(stored[0]!.clientId).toBe(firstId);
    expect(asked(2)).toEqual([`system: ${DEFAULT_PROMPT}`, 'user: Q1, reworded']);
    expect((await service.query('SELECT "messageCount" FROM "Chat" WHERE "id" = ?', chatId))[0]).toEqual({ messageCount: 2 });
  });

  test('history with ?format=ui loads into a new client, which goes on from it with no duplicates', async () => {
    await start();
    const chatId = randomUUID();
    const first = new PlainChat(chatId, service.url);
    upstream.enqueue({ kind: 'stream', content: ['A1'], usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } });
    await first.sendMessage({ text: 'Q1' });

    const history = await getPath(service.url, `/api/chats/${chatId}/messages?format=ui`);
    expect(history.status).toBe(200);
    const body = history.json() as { chatId: string; messages: UIMessage[] };
    const [user, assistant] = await rows(chatId);
    expect(body).toEqual({
      chatId,
      messages: [
        {
          id: user!.clientId,
          role: 'user',
          parts: [{ type: 'text', text: 'Q1' }],
          metadata: expect.objectContaining({ status: 'completed', usage: null }),
        },
        {
          id: assistant!.id,
          role: 'assistant',
          parts: [{ type: 'text', text: 'A1' }],
          metadata: expect.objectContaining({
            status: 'completed',
            finishReason: 'stop',
            usage: { promptTokens: 7, completionTokens: 2, totalTokens: 9 },
            usageEstimated: false,
            model: 'gpt-4o',
          }),
        },
      ],
    });
    expect(body.messages.map((message) => message.id)).toEqual(first.messages.map((message) => message.id));

    const second = new PlainChat(chatId, service.url, body.messages);
    upstream.enqueue({ kind: 'stream', content: ['A2'] });
    await second.sendMessage({ text: 'Q2' });
    expect(texts(second)).toEqual(['user: Q1', 'assistant: A1', 'user: Q2', 'assistant: A2']);
    expect((await rows(chatId)).map(({ role, content }) => `${role}: ${content}`)).toEqual(['user: Q1', 'assistant: A1', 'user: Q2', 'assistant: A2']);
  });

  test('with API keys: the transport sends the key as a header, and ids never clash across owners', async () => {
    await start(true);
    const alice = (await service.keys!.create('alice')).key;
    const bob = (await service.keys!.create('bob')).key;
    const chatId = 'shared-chat-id';
    const aliceChat = new PlainChat(chatId, service.url, [], { authorization: `Bearer ${alice}` });
    const bobChat = new PlainChat(chatId, service.url, [], { authorization: `Bearer ${bob}` });
    upstream.enqueue({ kind: 'stream', content: ['for alice'] }, { kind: 'stream', content: ['for bob'] });
    // Both clients pick the same message id: each owner has its own.
    await aliceChat.sendMessage({ id: 'msg-1', role: 'user', parts: [{ type: 'text', text: 'from alice' }] });
    await bobChat.sendMessage({ id: 'msg-1', role: 'user', parts: [{ type: 'text', text: 'from bob' }] });
    expect(aliceChat.error).toBeUndefined();
    expect(bobChat.error).toBeUndefined();
    expect(texts(aliceChat)).toEqual(['user: from alice', 'assistant: for alice']);
    expect(texts(bobChat)).toEqual(['user: from bob', 'assistant: for bob']);
    expect(await service.query('SELECT "clientId", "content" FROM "Message" WHERE "role" = \'user\' ORDER BY "seq"')).toEqual([
      { clientId: 'msg-1', content: 'from alice' },
      { clientId: 'msg-1', content: 'from bob' },
    ]);
  });

  describe('bad input: a clear 400 or 409, and nothing stored', () => {
    const ui = (text: string, id = 'm1', role = 'user') => ({ id, role, parts: [{ type: 'text', text }] });

    test.each<[string, Record<string, unknown>, Array<{ path: string; message: string }>]>([
      ['no id', { trigger: 'submit-message', messages: [ui('x')] }, [{ path: 'id', message: 'id is required' }]],
      ['no id and no trigger, messages with parts', { messages: [ui('x')] }, [{ path: 'id', message: 'id is required' }]],
      ['neither chatId nor id', { messages: [{ role: 'user', content: 'x' }] }, [{ path: 'chatId', message: 'chatId is required' }]],
      ['an id outside the set', { id: 'has space', trigger: 'submit-message', messages: [ui('x')] }, [{ path: 'id', message: 'id must be 1 to 128 letters, digits, "_" or "-"' }]],
      ['an id over 128 characters', { id: 'a'.repeat(129), messages: [ui('x')] }, [{ path: 'id', message: 'id must be 1 to 128 letters, digits, "_" or "-"' }]],
      ['an unknown trigger', { id: 'c1', trigger: 'resume-stream', messages: [ui('x')] }, [{ path: 'trigger', message: 'Invalid option: expected one of "submit-message"|"regenerate-message"' }]],
      [
        'a file part',
        { id: 'c1', trigger: 'submit-message', messages: [{ id: 'm1', role: 'user', parts: [{ type: 'file', url: 'data:,x', mediaType: 'text/plain' }] }] },
        [{ path: 'messages.0.parts.0.type', message: 'only text parts are supported, not "file"' }],
      ],
      ['a last message that is not the user\'s', { id: 'c1', trigger: 'submit-message', messages: [ui('x', 'm1', 'assistant')] }, [{ path: 'messages.0.role', message: 'the last message must be the user message to answer' }]],
      ['an empty text', { id: 'c1', trigger: 'submit-message', messages: [ui('')] }, [{ path: 'messages.0.parts', message: 'the message must not be empty' }]],
      ['a message id outside the set', { id: 'c1', trigger: 'submit-message', messages: [ui('x', 'bad id!')] }, [{ path: 'messages.0.id', message: 'id must be 1 to 128 letters, digits, "_" or "-"' }]],
      ['an edit whose messageId is not the last message', { id: 'c1', trigger: 'submit-message', messageId: 'm0', messages: [ui('x')] }, [{ path: 'messageId', message: 'messageId must be the id of the last message, the edited one' }]],
      ['no messages', { id: 'c1', trigger: 'submit-message', messages: [] }, [{ path: 'messages', message: 'messages must not be empty' }]],
    ])('%s', async (_name, body, details) => {
      await start();
      const answer = await postChat(service.url, body);
      expect(answer.status).toBe(400);
      expect(answer.json()).toEqual({ error: { code: 'invalid_request', message: 'Invalid chat request.', details } });
      expect(await service.query('SELECT COUNT(*) AS "n" FROM "Message"')).toEqual([{ n: 0 }]);
      expect(upstream.requests).toHaveLength(0);
    });

    test('earlier messages are not read: parts the service cannot store there are no error', async () => {
      await start();
      const earlier = { id: 'old', role: 'assistant', parts: [{ type: 'tool-weather', toolCallId: 't', state: 'output-available' }, { type: 'step-start' }] };
      const answer = await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [earlier, ui('now')] });
      expect(answer.status).toBe(200);
      expect(asked(0)).toEqual([`system: ${DEFAULT_PROMPT}`, 'user: now']);
    });

    test('a system message sets the chat prompt', async () => {
      await start();
      const system = { id: 's', role: 'system', parts: [{ type: 'text', text: 'Be brief.' }] };
      expect((await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [system, ui('Q')] })).status).toBe(200);
      expect(asked(0)).toEqual(['system: Be brief.', 'user: Q']);
      expect(await service.query('SELECT "systemPrompt" FROM "Chat" WHERE "id" = ?', 'c1')).toEqual([{ systemPrompt: 'Be brief.' }]);
    });

    test('a new message with an id the chat has: 409 message_id_conflict, nothing stored', async () => {
      await start();
      expect((await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [ui('Q', 'm1')] })).status).toBe(200);
      const before = await rows('c1');
      const answer = await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [ui('Q again', 'm1')] });
      expect(answer.status).toBe(409);
      expect(answer.json()).toEqual({
        error: { code: 'message_id_conflict', message: 'This chat already has a message with id "m1"; to change it, send its id as messageId.' },
      });
      expect(await rows('c1')).toEqual(before);
      expect(upstream.requests).toHaveLength(1);
    });

    test('an edit or a regeneration naming a message the chat does not have: 400, nothing changed', async () => {
      await start();
      expect((await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [ui('Q', 'm1')] })).status).toBe(200);
      const before = await rows('c1');
      for (const body of [
        { id: 'c1', trigger: 'submit-message', messageId: 'nope', messages: [ui('x', 'nope')] },
        { id: 'c1', trigger: 'regenerate-message', messageId: 'nope', messages: [] },
      ]) {
        const answer = await postChat(service.url, body);
        expect(answer.status).toBe(400);
        expect(answer.json()).toEqual({ error: { code: 'invalid_request', message: 'messageId "nope" is not the id of a message of this chat.' } });
      }
      // An edit of the reply: only the user's messages can be edited.
      const replyId = before[1]!.id;
      const answer = await postChat(service.url, { id: 'c1', trigger: 'submit-message', messageId: replyId, messages: [ui('x', replyId)] });
      expect(answer.status).toBe(400);
      expect(answer.json().error.message).toBe(`messageId "${replyId}" is not a user message: only the user's messages can be edited.`);
      expect(await rows('c1')).toEqual(before);
      expect(upstream.requests).toHaveLength(1);
    });

    test('a regeneration or an edit on a chat that does not exist: 404 chat_not_found', async () => {
      await start();
      for (const body of [
        { id: 'never', trigger: 'regenerate-message', messages: [] },
        { id: 'never', trigger: 'submit-message', messageId: 'm1', messages: [ui('x', 'm1')] },
      ]) {
        const answer = await postChat(service.url, body);
        expect(answer.status).toBe(404);
        expect(answer.json().error.code).toBe('chat_not_found');
      }
      expect(await service.query('SELECT COUNT(*) AS "n" FROM "Chat"')).toEqual([{ n: 0 }]);
    });
  });

  test('resume: a second client (a reload) picks the reply up from the service and ends with the same message', async () => {
    await start();
    const chatId = randomUUID();
    const first = new PlainChat(chatId, service.url);
    upstream.enqueue({ kind: 'stream', content: ['one ', 'two ', 'three ', 'four'], delayMs: 150 });
    const sending = first.sendMessage({ text: 'Count' });
    // The reply is under way: its row is streaming.
    for (let tries = 0; tries < 100; tries += 1) {
      const [reply] = await service.query<{ status: string }>('SELECT "status" FROM "Message" WHERE "role" = \'assistant\'');
      if (reply?.status === 'streaming') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const history = (await getPath(service.url, `/api/chats/${chatId}/messages?format=ui`)).json() as { messages: UIMessage[] };
    // The reply still streaming is left out of the history: the resume brings it whole.
    expect(history.messages.map((message) => message.role)).toEqual(['user']);
    const second = new PlainChat(chatId, service.url, history.messages);
    await second.resumeStream();
    await sending;
    expect(second.error).toBeUndefined();
    expect(texts(second)).toEqual(['user: Count', 'assistant: one two three four']);
    expect(second.messages.map((message) => message.id)).toEqual(first.messages.map((message) => message.id));
  });

  test('paging the history by a client-given id, and a deleted chat id used again with the same message ids', async () => {
    await start();
    const ui = (text: string, id: string) => ({ id, role: 'user', parts: [{ type: 'text', text }] });
    for (const [text, id] of [['Q1', 'm1'], ['Q2', 'm2'], ['Q3', 'm3']]) {
      expect((await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [ui(text!, id!)] })).status).toBe(200);
    }
    const page = (await getPath(service.url, '/api/chats/c1/messages?limit=2&before=m3')).json() as { messages: Array<{ id: string; content: string }> };
    expect(page.messages.map((message) => message.content)).toEqual(['Q2', 'Hello world']);
    expect(page.messages[0]!.id).toBe('m2');
    const uiPage = (await getPath(service.url, '/api/chats/c1/messages?format=ui&limit=1&before=m2')).json() as { messages: UIMessage[] };
    expect(uiPage.messages.map((message) => message.role)).toEqual(['assistant']);

    expect((await fetch(`${service.url}/api/chats/c1`, { method: 'DELETE' })).status).toBe(204);
    // The old messages may still wait for their purge: they are another chat's, and their ids free.
    const again = await postChat(service.url, { id: 'c1', trigger: 'submit-message', messages: [ui('Q1 again', 'm1')] });
    expect(again.status).toBe(200);
    const fresh = (await getPath(service.url, '/api/chats/c1/messages?format=ui')).json() as { messages: UIMessage[] };
    expect(fresh.messages.map((message) => message.id)[0]).toBe('m1');
    expect(fresh.messages).toHaveLength(2);
  });

  test('resume of a chat id never used: 204', async () => {
    await start();
    const answer = await getPath(service.url, '/api/chat/never-used-id/stream');
    expect(answer.status).toBe(204);
  });
});
