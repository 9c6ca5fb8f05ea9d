import type { ChatMessage, StoredMessage } from './ports';

/**
 * The newest `maxPairs` exchanges of `history` (oldest first), as context for the next call.
 * A pair is a user message and the assistant reply that followed it. A reply with no text
 * (the upstream failed before its first token) never reached the user, so that exchange is left
 * out; a partial reply (interrupted, failed mid-way) is kept, as the user saw it.
 */
export function selectRecentPairs(history: StoredMessage[], maxPairs: number): ChatMessage[] {
  const pairs: ChatMessage[][] = [];
  for (let index = history.length - 1; index > 0 && pairs.length < maxPairs; index -= 1) {
    const reply = history[index]!;
    const question = history[index - 1]!;
    if (reply.role !== 'assistant' || question.role !== 'user' || reply.content === '') continue;
    pairs.push([
      { role: 'user', content: question.content },
      { role: 'assistant', content: reply.content },
    ]);
    index -= 1;
  }
  return pairs.reverse().flat();
}

/** How many stored messages to read to find `maxPairs` pairs in a history with a few gaps. */
export function historyWindow(maxPairs: number): number {
  return maxPairs * 2 + 20;
}
