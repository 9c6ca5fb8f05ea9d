import { selectRecentPairs } from '../../src/chat/build-context';
import type { ChatMessage, MessageStatus, Role, StoredMessage } from '../../src/chat/ports';

let sequence = 0;

/** A stored message; assistant replies default to completed with finish reason `stop`. */
function stored(role: Role, content: string, status: MessageStatus = 'completed'): StoredMessage {
  sequence += 1;
  return {
    id: `message-${sequence}`,
    role,
    content,
    status,
    finishReason: role === 'assistant' && status === 'completed' ? 'stop' : null,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)),
    tokenCount: null,
    promptTokens: null,
    completionTokens: null,
    totalTokens: null,
    usageEstimated: false,
    model: null,
    timeToFirstTokenMs: null,
    durationMs: null,
    systemPromptHash: null,
  };
}

const user = (content: string) => stored('user', content);
const reply = (content: string, status: MessageStatus = 'completed') => stored('assistant', content, status);

/** The context messages for `pairs` of [question, answer]. */
function context(...pairs: Array<[question: string, answer: string]>): ChatMessage[] {
  return pairs.flatMap(([question, answer]) => [
    { role: 'user' as const, content: question },
    { role: 'assistant' as const, content: answer },
  ]);
}

describe('selectRecentPairs', () => {
  const fourPairs = () => [user('q1'), reply('a1'), user('q2'), reply('a2'), user('q3'), reply('a3'), user('q4'), reply('a4')];

  test('returns every pair, oldest first, when there are fewer than maxPairs', () => {
    expect(selectRecentPairs(fourPairs(), 10)).toStrictEqual(context(['q1', 'a1'], ['q2', 'a2'], ['q3', 'a3'], ['q4', 'a4']));
  });

  test.each<[maxPairs: number, expected: ChatMessage[]]>([
    [0, []],
    [1, context(['q4', 'a4'])],
    [2, context(['q3', 'a3'], ['q4', 'a4'])],
    [4, context(['q1', 'a1'], ['q2', 'a2'], ['q3', 'a3'], ['q4', 'a4'])],
  ])('with maxPairs %d, keeps the newest pairs, oldest first', (maxPairs, expected) => {
    expect(selectRecentPairs(fourPairs(), maxPairs)).toStrictEqual(expected);
  });

  test('returns nothing for an empty history', () => {
    expect(selectRecentPairs([], 5)).toStrictEqual([]);
  });

  test.each<[description: string, history: () => StoredMessage[], expected: ChatMessage[]]>([
    [
      'a reply that failed before its first token drops its exchange',
      () => [user('q1'), reply('a1'), user('q2'), reply('', 'failed'), user('q3'), reply('a3')],
      context(['q1', 'a1'], ['q3', 'a3']),
    ],
    [
      'a reply interrupted before its first token drops its exchange',
      () => [user('q1'), reply('', 'interrupted'), user('q2'), reply('a2')],
      context(['q2', 'a2']),
    ],
    [
      'a reply still streaming with no text yet drops its exchange',
      () => [user('q1'), reply('a1'), user('q2'), reply('', 'streaming')],
      context(['q1', 'a1']),
    ],
    [
      'a partial reply that failed mid-way is kept as the user saw it',
      () => [user('q1'), reply('Half an ans', 'failed'), user('q2'), reply('a2')],
      context(['q1', 'Half an ans'], ['q2', 'a2']),
    ],
    [
      'a partial interrupted reply is kept',
      () => [user('q1'), reply('Interrupted he', 'interrupted')],
      context(['q1', 'Interrupted he']),
    ],
    [
      'two user messages in a row: the first is skipped',
      () => [user('q1'), reply('a1'), user('lost'), user('q2'), reply('a2'), user('q3'), reply('a3')],
      context(['q1', 'a1'], ['q2', 'a2'], ['q3', 'a3']),
    ],
    [
      'an assistant message without a user message before it is skipped',
      () => [user('q1'), reply('a1'), reply('stray'), user('q2'), reply('a2')],
      context(['q1', 'a1'], ['q2', 'a2']),
    ],
    [
      'a history starting with an assistant message',
      () => [reply('greeting'), user('q1'), reply('a1')],
      context(['q1', 'a1']),
    ],
    [
      'a trailing user message without a reply',
      () => [user('q1'), reply('a1'), user('unanswered')],
      context(['q1', 'a1']),
    ],
    [
      'a system message between pairs',
      () => [user('q1'), reply('a1'), stored('system', 'Be brief.'), user('q2'), reply('a2')],
      context(['q1', 'a1'], ['q2', 'a2']),
    ],
    [
      'a user message followed by two replies keeps the one right after it',
      () => [user('q1'), reply('a1'), reply('a1 again'), user('q2'), reply('a2')],
      context(['q1', 'a1'], ['q2', 'a2']),
    ],
  ])('%s', (_description, history, expected) => {
    expect(selectRecentPairs(history(), 10)).toStrictEqual(expected);
  });

  test('gaps do not count towards maxPairs', () => {
    const history = [user('q1'), reply('a1'), user('q2'), reply('', 'failed'), user('orphan'), user('q3'), reply('a3')];
    expect(selectRecentPairs(history, 2)).toStrictEqual(context(['q1', 'a1'], ['q3', 'a3']));
  });

  test('keeps the content of each message exactly, whitespace and all', () => {
    const history = [user('  spaced  \n'), reply('line one\nline two\n'), user('ünïcødé 👋'), reply(' ok ')];
    expect(selectRecentPairs(history, 10)).toStrictEqual(context(['  spaced  \n', 'line one\nline two\n'], ['ünïcødé 👋', ' ok ']));
  });

  test('does not change the history it is given', () => {
    const history = fourPairs();
    const copy = structuredClone(history);
    selectRecentPairs(history, 2);
    expect(history).toStrictEqual(copy);
  });
});
