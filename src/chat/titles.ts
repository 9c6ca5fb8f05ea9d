import type { ChatMessage, LlmProvider } from './ports';

const MAX_TITLE_LENGTH = 60;

/** A chat's automatic title: the start of its first message on one line, cut at a word. */
export function titleFromMessage(content: string): string {
  const line = content.replace(/\s+/g, ' ').trim();
  if (line.length <= MAX_TITLE_LENGTH) return line;
  // Cut before the word the limit falls in, unless that leaves too little.
  const cut = line.slice(0, MAX_TITLE_LENGTH);
  const lastSpace = cut.lastIndexOf(' ');
  return `${(lastSpace > MAX_TITLE_LENGTH / 2 ? cut.slice(0, lastSpace) : cut.slice(0, MAX_TITLE_LENGTH - 1)).trimEnd()}…`;
}

const TITLE_PROMPT =
  'Write a title of at most six words for the conversation below. Answer with the title only, ' +
  'without quotes or a final full stop.';

/**
 * Asks the model for a short title for the exchange `question` → `reply`.
 * @returns the title, or undefined when the model gave nothing usable.
 */
export async function generateTitle(provider: LlmProvider, question: string, reply: string, signal: AbortSignal): Promise<string | undefined> {
  const messages: ChatMessage[] = [
    { role: 'system', content: TITLE_PROMPT },
    { role: 'user', content: `User: ${question.slice(0, 2000)}\n\nAssistant: ${reply.slice(0, 2000)}` },
  ];
  let text = '';
  for await (const event of await provider.openStream({ messages, signal, maxTokens: 20 })) {
    if (event.type === 'text') text += event.text;
  }
  const title = text.replace(/^["'“”\s]+|["'“”.\s]+$/g, '').replace(/\s+/g, ' ');
  return title === '' ? undefined : titleFromMessage(title);
}
