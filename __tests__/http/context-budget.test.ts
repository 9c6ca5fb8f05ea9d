import { createHash, randomUUID } from 'node:crypto';
import { getPath, postChat, userTurn } from '../support/chat-client';
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

async function send(chatId: string, content: string, reply: string, systemPrompt?: string, target = service) {
  upstream.enqueue({ kind: 'stream', content: [reply] });
  return postChat(target.url, userTurn(chatId, content, systemPrompt));
}

const FIFTY_XS = Array.from({ length: 50 }, () => 'x').join(' ');

describe('context within a token budget', () => {
  /*
   * The worked example, in o200k_base tokens (the fake deployment is gpt-4o). Each message costs
   * its content + 4, every prompt 3 more:
   *   system "Be brief."                                   3 + 4 =  7
   *   pair 1 "alpha beta gamma" / "Short answer."          7 + 7 = 14
   *   pair 2 fifty "x" / "Short answer."                  54 + 7 = 61
   *   pair 3 "Tell me about the sea." / "The sea is big." 10 + 9 = 19
   *   new    "Last question?"                              3 + 4 =  7
   * Budget: max_context_tokens 1100 - reserve_output_tokens 1050 = 50.
   * 7 + 7 + 3 = 17; with pair 3: 36; pair 2 would make 97 > 50, so the history stops there, and
   * pair 1, which would still fit (50), is not taken: the history is never split.
   */
  test('keeps the newest whole pairs that fit, stopping at the first that does not', async () => {
    const chatId = randomUUID();
    await send(chatId, 'alpha beta gamma', 'Short answer.', 'Be brief.');
    await send(chatId, FIFTY_XS, 'Short answer.');
    await send(chatId, 'Tell me about the sea.', 'The sea is big.');
    // The same database under a tighter budget: a restart with another configuration.
    await service.stop();
    const tight = await startTestService({
      upstream,
      reuseDatabase: service.databaseUrl,
      configToml: '[chat]\nmax_context_tokens = 1100\nreserve_output_tokens = 1050\n',
    });
    try {
      const exchange = await send(chatId, 'Last question?', 'Answer.', undefined, tight);

      expect(exchange.status).toBe(200);
      expect(upstream.requests.at(-1)!.body.messages).toEqual([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Tell me about the sea.' },
        { role: 'assistant', content: 'The sea is big.' },
        { role: 'user', content: 'Last question?' },
      ]);
      expect(upstream.requests.at(-1)!.body.max_tokens).toBe(1050);
      expect(parseParts(exchange.text)[0]!.messageMetadata).toEqual({ contextMessages: 4, droppedMessages: 4, promptTokensEstimate: 36 });
    } finally {
      await tight.close();
    }
  });

  test('answers 400 context_too_long before any upstream call when the new message alone cannot fit', async () => {
    const tight = await startTestService({ upstream, configToml: '[chat]\nmax_context_tokens = 1100\nreserve_output_tokens = 1050\n' });
    try {
      const exchange = await postChat(tight.url, userTurn(randomUUID(), FIFTY_XS));
      expect(exchange.status).toBe(400);
      // Default system prompt 6 + 4, the message 50 + 4, and 3.
      expect(exchange.json()).toEqual({
        error: {
          code: 'context_too_long',
          message: "The new message is too long for the model's context window.",
          details: { promptTokens: 67, maxPromptTokens: 50 },
        },
      });
      expect(upstream.requests).toHaveLength(0);
      expect(await tight.query('SELECT COUNT(*) AS count FROM Message')).toEqual([{ count: 0 }]);
      expect(await tight.query('SELECT COUNT(*) AS count FROM Chat')).toEqual([{ count: 0 }]);
    } finally {
      await tight.close();
    }
  });

  test('when the upstream still answers context_length_exceeded, drops the oldest pairs and retries once', async () => {
    const chatId = randomUUID();
    for (const number of [1, 2, 3, 4]) await send(chatId, `Q${number}`, `A${number}`);
    upstream.enqueue(azureErrors.contextLengthExceeded(), { kind: 'stream', content: ['Fits now'] });

    const exchange = await postChat(service.url, userTurn(chatId, 'Q5'));

    expect(exchange.status).toBe(200);
    const [refused, retried] = upstream.requests.slice(-2).map((request) => request.body.messages.map((message: { content: string }) => message.content));
    expect(refused).toEqual(['You are a helpful assistant.', 'Q1', 'A1', 'Q2', 'A2', 'Q3', 'A3', 'Q4', 'A4', 'Q5']);
    expect(retried).toEqual(['You are a helpful assistant.', 'Q3', 'A3', 'Q4', 'A4', 'Q5']);
    const parts = parseParts(exchange.text);
    expect(parts[0]!.messageMetadata).toMatchObject({ contextMessages: 6, droppedMessages: 4 });
    expect(parts.filter((part) => part.type === 'text-delta').map((part) => part.delta)).toEqual(['Fits now']);
    expect(await service.query("SELECT content, status FROM Message WHERE role = 'assistant' ORDER BY seq DESC LIMIT 1")).toEqual([
      { content: 'Fits now', status: 'completed' },
    ]);
  });

  test('a second context_length_exceeded is answered with 400', async () => {
    const chatId = randomUUID();
    await send(chatId, 'Q1', 'A1');
    upstream.enqueue(azureErrors.contextLengthExceeded(), azureErrors.contextLengthExceeded());
    const exchange = await postChat(service.url, userTurn(chatId, 'Q2'));
    expect(exchange.status).toBe(400);
    expect(exchange.json().error.code).toBe('context_length_exceeded');
    expect(upstream.requests).toHaveLength(3);
  });
});

/*
 * The chat's own prompt is read in the same store call that writes the turn, which writes only
 * when the prompt has no more UTF-8 bytes than the tokens left for it; past that, the prompt is
 * counted exactly before the turn is written, or refused with nothing written.
 */
describeEachEngine(() => {
  describe("a chat's stored prompt and the budget", () => {
    let tight: TestService;

    beforeEach(async () => {
      tight = await startTestService({ upstream, configToml: '[chat]\nmax_context_tokens = 1100\nreserve_output_tokens = 1050\n' });
    });

    afterEach(async () => {
      await tight.close();
    });

    async function chatWithPrompt(prompt: string): Promise<string> {
      const chatId = randomUUID();
      expect((await send(chatId, 'Hi', 'Hello.', 'Be brief.', tight)).status).toBe(200);
      const patched = await fetch(`${tight.url}/api/chats/${chatId}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ systemPrompt: prompt }),
      });
      expect(patched.status).toBe(200);
      return chatId;
    }

    const rowsOf = (chatId: string) => tight.query('SELECT "role", "content", "status" FROM "Message" WHERE "chatId" = ? ORDER BY "seq"', chatId);

    test('too long for what the new message leaves: 400 context_too_long with the exact count, nothing written', async () => {
      const chatId = await chatWithPrompt(FIFTY_XS);
      const before = await rowsOf(chatId);
      const summary = (await getPath(tight.url, `/api/chats/${chatId}`)).json();

      const exchange = await postChat(tight.url, userTurn(chatId, 'Last question?'));

      expect(exchange.status).toBe(400);
      // The prompt 50 + 4, the message 3 + 4, and 3.
      expect(exchange.json()).toEqual({
        error: {
          code: 'context_too_long',
          message: "The new message is too long for the model's context window.",
          details: { promptTokens: 64, maxPromptTokens: 50 },
        },
      });
      expect(upstream.requests).toHaveLength(1);
      expect(await rowsOf(chatId)).toEqual(before);
      expect((await getPath(tight.url, `/api/chats/${chatId}`)).json()).toEqual(summary);
    });

    test('more bytes than tokens left, yet fitting once counted: the turn goes on with it', async () => {
      // Ten tokens in 40 bytes; the new message leaves 50 - 7 - 3 - 4 = 36 tokens for it.
      const prompt = ' the'.repeat(10);
      const chatId = await chatWithPrompt(prompt);

      const exchange = await send(chatId, 'Last question?', 'Answer.', undefined, tight);

      expect(exchange.status).toBe(200);
      expect(upstream.requests.at(-1)!.body.messages).toEqual([
        { role: 'system', content: prompt },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'Last question?' },
      ]);
      expect(await rowsOf(chatId)).toEqual([
        { role: 'user', content: 'Hi', status: 'completed' },
        { role: 'assistant', content: 'Hello.', status: 'completed' },
        { role: 'user', content: 'Last question?', status: 'completed' },
        { role: 'assistant', content: 'Answer.', status: 'completed' },
      ]);
      const [reply] = await tight.query('SELECT "systemPromptHash" FROM "Message" WHERE "chatId" = ? AND "content" = ?', chatId, 'Answer.');
      expect(reply).toEqual({ systemPromptHash: createHash('sha256').update(prompt).digest('hex') });
    });
  });
});

describe('the tokenizer', () => {
  // "Streaming tokens über alles 🚀" is 6 tokens in o200k_base and 7 in cl100k_base; the default
  // system prompt is 6 in both. The prompt is (6 + 4) + (text + 4) + 3.
  const TEXT = 'Streaming tokens über alles 🚀';

  test('is the one the model name implies (o200k_base for gpt-4o), unless [chat] tokenizer names one', async () => {
    const inferred = await send(randomUUID(), TEXT, 'Fine.');
    expect(parseParts(inferred.text)[0]!.messageMetadata).toEqual({ contextMessages: 2, droppedMessages: 0, promptTokensEstimate: 23 });

    const configured = await startTestService({ upstream, configToml: '[chat]\ntokenizer = "cl100k_base"\n' });
    try {
      const explicit = await send(randomUUID(), TEXT, 'Fine.', undefined, configured);
      expect(parseParts(explicit.text)[0]!.messageMetadata).toEqual({ contextMessages: 2, droppedMessages: 0, promptTokensEstimate: 24 });
    } finally {
      await configured.close();
    }
  });
});

describe('usage and timing per reply', () => {
  test('are exact when the usage chunk arrives, and returned by the history API', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['Four ', 'words ', 'right ', 'here'], usage: { prompt_tokens: 21, completion_tokens: 4, total_tokens: 25 } });
    const exchange = await postChat(service.url, userTurn(chatId, 'Hi', 'Be brief.'));
    const finish = parseParts(exchange.text).at(-1)!;

    const reply = (await getPath(service.url, `/api/chats/${chatId}/messages`)).json().messages[1];
    expect(reply).toEqual({
      id: expect.any(String),
      role: 'assistant',
      content: 'Four words right here',
      status: 'completed',
      finishReason: 'stop',
      createdAt: expect.any(String),
      usage: { promptTokens: 21, completionTokens: 4, totalTokens: 25 },
      usageEstimated: false,
      model: 'gpt-4o',
      timeToFirstTokenMs: expect.any(Number),
      durationMs: expect.any(Number),
      // sha256("Be brief.")
      systemPromptHash: '213c22ed7234eb11116e1e88f314c73cb3a019b5c87fe224b6ce5665bd9ec50e',
    });
    expect(finish.messageMetadata).toEqual({
      usage: { promptTokens: 21, completionTokens: 4, totalTokens: 25 },
      usageEstimated: false,
      model: 'gpt-4o',
      timeToFirstTokenMs: reply.timeToFirstTokenMs,
      durationMs: reply.durationMs,
    });
    expect(reply.timeToFirstTokenMs).toBeLessThanOrEqual(reply.durationMs);
  });

  test('are estimated with the tokenizer when the stream is cut', async () => {
    const chatId = randomUUID();
    upstream.enqueue({ kind: 'stream', content: ['The sea is big.', ' More'], ending: 'reset', cutAfter: 1 });
    const exchange = await postChat(service.url, userTurn(chatId, 'Hello'));
    expect(parseParts(exchange.text).at(-1)!.type).toBe('error');

    const reply = (await getPath(service.url, `/api/chats/${chatId}/messages`)).json().messages[1];
    // Prompt: 6 + 4 (system) + 1 + 4 ("Hello") + 3 = 18; completion: "The sea is big." = 5.
    expect(reply).toMatchObject({
      content: 'The sea is big.',
      status: 'failed',
      usage: { promptTokens: 18, completionTokens: 5, totalTokens: 23 },
      usageEstimated: true,
    });
  });
});
