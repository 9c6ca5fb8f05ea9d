import { AppError } from '../errors/app-error';
import type { ChatMessage, StoredMessage, TokenCounter } from './ports';

type Pair = [question: StoredMessage, reply: StoredMessage];

/**
 * The newest `maxPairs` exchanges of `history`, newest first. A pair is a user message and the
 * assistant reply that followed it. A reply with no text (the upstream failed before its first
 * token) never reached the user, so that exchange is left out; a partial reply (interrupted,
 * failed mid-way) is kept, as the user saw it.
 */
export function recentPairs(history: StoredMessage[], maxPairs: number): Pair[] {
  const pairs: Pair[] = [];
  for (let index = history.length - 1; index > 0 && pairs.length < maxPairs; index -= 1) {
    const reply = history[index]!;
    const question = history[index - 1]!;
    if (reply.role !== 'assistant' || question.role !== 'user' || reply.content === '') continue;
    pairs.push([question, reply]);
    index -= 1;
  }
  return pairs;
}

/** The newest `maxPairs` exchanges of `history` as context messages, oldest first. */
export function selectRecentPairs(history: StoredMessage[], maxPairs: number): ChatMessage[] {
  return recentPairs(history, maxPairs).reverse().flatMap(toMessages);
}

/** How many stored messages to read to find `maxPairs` pairs in a history with a few gaps. */
export function historyWindow(maxPairs: number): number {
  return maxPairs * 2 + 20;
}

export interface ContextInput {
  systemPrompt: string;
  history: StoredMessage[];
  newMessages: ChatMessage[];
  /** Token counts of `newMessages`' contents, in order. */
  newTokenCounts: number[];
  maxPairs: number;
  /** The prompt may use at most this many tokens (the window less the room kept for the reply). */
  maxPromptTokens: number;
  counter: TokenCounter;
}

export interface Context {
  messages: ChatMessage[];
  /** Pairs of history included. */
  pairs: number;
  /** Stored messages included. */
  historyMessages: number;
  promptTokens: number;
}

/**
 * Tokens of a prompt with no history: the system prompt (of `systemPromptTokens` content tokens,
 * counted if not given), the new messages and the reply's priming.
 */
export function promptTokensWithoutHistory(
  input: Pick<ContextInput, 'systemPrompt' | 'newMessages' | 'newTokenCounts' | 'counter'>,
  systemPromptTokens?: number,
): number {
  const { counter, newMessages } = input;
  return (
    counter.messageTokens({ role: 'system', content: input.systemPrompt }, systemPromptTokens) +
    newMessages.reduce((sum, message, index) => sum + counter.messageTokens(message, input.newTokenCounts[index]), 0) +
    counter.replyPriming
  );
}

/**
 * System prompt, then the newest whole pairs that fit both `maxPairs` and the token budget
 * (never split, never reordered; the first pair that does not fit ends the history), then the
 * new messages.
 * @throws AppError context_too_long when the system prompt and new messages alone do not fit.
 */
export function buildContext(input: ContextInput): Context {
  const { counter, newMessages } = input;
  const system: ChatMessage = { role: 'system', content: input.systemPrompt };
  let promptTokens = promptTokensWithoutHistory(input);
  if (promptTokens > input.maxPromptTokens) {
    throw new AppError('context_too_long', 'The new message is too long for the model\'s context window.', {
      details: { promptTokens, maxPromptTokens: input.maxPromptTokens },
    });
  }
  const included: Pair[] = [];
  for (const pair of recentPairs(input.history, input.maxPairs)) {
    const pairTokens = pair.reduce((sum, message) => sum + counter.messageTokens(message, message.tokenCount ?? undefined), 0);
    if (promptTokens + pairTokens > input.maxPromptTokens) break;
    promptTokens += pairTokens;
    included.push(pair);
  }
  const history = included.reverse().flatMap(toMessages);
  return { messages: [system, ...history, ...newMessages], pairs: included.length, historyMessages: history.length, promptTokens };
}

function toMessages([question, reply]: Pair): ChatMessage[] {
  return [
    { role: 'user', content: question.content },
    { role: 'assistant', content: reply.content },
  ];
}
