import { setTimeout as sleep } from 'node:timers/promises';
import type { ChatMessage, LlmEvent, LlmProvider, LlmRequest } from '../chat/ports';

/**
 * A stand-in model for trying the service with no account: it streams a fixed reply that quotes
 * the last user message, one word every `delayMs`, so clients see a realistic stream.
 */
export function createSimulatorProvider(options: { delayMs: number }): LlmProvider {
  return {
    name: 'simulator',
    model: 'simulator',
    async openStream(request: LlmRequest) {
      return streamReply(simulatedReply(request.messages), request, options.delayMs);
    },
  };
}

/** The simulator's whole reply to `messages`: the same input always gives the same reply. */
export function simulatedReply(messages: ChatMessage[]): string {
  const lastUser = [...messages].reverse().find((message) => message.role === 'user');
  const quoted = (lastUser?.content ?? '').replace(/\s+/g, ' ').trim();
  const excerpt = quoted.length > 120 ? `${quoted.slice(0, 117)}...` : quoted;
  const turns = messages.filter((message) => message.role === 'user').length;
  return (
    `[simulator] You said: "${excerpt}". This reply comes from the built-in simulator, ` +
    `because no model provider is configured (message ${turns} of this conversation in context). ` +
    'Set AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT_NAME, ' +
    'or OPENAI_API_KEY, to talk to a real model.'
  );
}

async function* streamReply(reply: string, request: LlmRequest, delayMs: number): AsyncGenerator<LlmEvent> {
  const words = reply.match(/\S+\s*/g) ?? [];
  try {
    for (const word of words) {
      await sleep(delayMs, undefined, { signal: request.signal });
      yield { type: 'text', text: word };
    }
  } catch {
    return; // aborted: the caller knows why
  }
  const promptTokens = Math.ceil(request.messages.reduce((sum, message) => sum + message.content.length, 0) / 4);
  yield { type: 'finish', finishReason: 'stop' };
  yield { type: 'usage', usage: { promptTokens, completionTokens: words.length, totalTokens: promptTokens + words.length } };
}
