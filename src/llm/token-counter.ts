import type * as o200k from 'gpt-tokenizer/encoding/o200k_base';
import type { ChatMessage, TokenCounter } from '../chat/ports';

export type EncodingName = 'o200k_base' | 'cl100k_base';

type Encoding = { countTokens: typeof o200k.countTokens };

/**
 * Loaded on demand: each encoding's tables take tens of MiB (o200k_base about 55 of RSS, and
 * about 0.4 s to load), and a service uses one.
 */
const ENCODINGS: Record<EncodingName, () => Encoding> = {
  o200k_base: () => require('gpt-tokenizer/encoding/o200k_base') as Encoding,
  cl100k_base: () => require('gpt-tokenizer/encoding/cl100k_base') as Encoding,
};

/** Models of the GPT-4o generation and later use o200k_base; older ones cl100k_base. */
export function inferEncoding(model: string): EncodingName {
  return /(^|[^a-z])(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o)/i.test(model) ? 'o200k_base' : 'cl100k_base';
}

/** The context window of well-known models; 8192 (the smallest GPT-4) when unknown. */
export function inferContextWindow(model: string): number {
  const name = model.toLowerCase();
  if (/gpt-5/.test(name)) return 400_000;
  if (/gpt-4\.1/.test(name)) return 1_047_576;
  if (/gpt-4o|gpt-4-turbo|gpt-4\.5|(^|[^a-z])o[134]/.test(name)) return 128_000;
  if (/gpt-4-32k/.test(name)) return 32_768;
  if (/gpt-35-turbo|gpt-3\.5-turbo/.test(name)) return 16_385;
  return 8_192;
}

/**
 * Counts tokens as OpenAI chat models see them: each message costs its content and role plus
 * 3 tokens of framing, and every reply is primed with 3 more. Special-token lookalikes in user
 * text (`<|endoftext|>`) are counted as the plain text they are.
 *
 * The encoding's tables are loaded by the first count, not here: a started service that has not
 * served a turn yet (a spare instance, a worker waiting for traffic) does not hold them.
 */
export function createTokenCounter(encoding: EncodingName): TokenCounter {
  let countTokens: Encoding['countTokens'] | undefined;
  const options = { disallowedSpecial: new Set<string>() };
  const count = (text: string) => (text === '' ? 0 : (countTokens ??= ENCODINGS[encoding]().countTokens)(text, options));
  return {
    encoding,
    count,
    // The role is one token in both encodings.
    messageTokens: (message: ChatMessage, contentTokens = count(message.content)) => contentTokens + 4,
    replyPriming: 3,
  };
}
