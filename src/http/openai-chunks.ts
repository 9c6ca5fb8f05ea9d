import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { FinishReason, Usage } from '../chat/ports';
import type { completionChunkSchema, completionSchema, modelListSchema, modelSchema, openAiFinishReasonSchema } from './openai-response-schemas';

/** What every chunk of one completion repeats, and its completion object carries. */
export interface CompletionIdentity {
  /** `chatcmpl-…` */
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

type OpenAiFinishReason = z.infer<typeof openAiFinishReasonSchema>;
type CompletionChunk = z.infer<typeof completionChunkSchema>;
type ModelObject = z.infer<typeof modelSchema>;

/**
 * Ours in OpenAI's words. `other` (a finish reason OpenAI does not have, sent by some compatible
 * servers) and `error` (never a finish reason of a completed reply) read as `stop`: the reply ended.
 */
const OPENAI_FINISH_REASONS: Record<FinishReason, OpenAiFinishReason> = {
  stop: 'stop',
  length: 'length',
  'content-filter': 'content_filter',
  'tool-calls': 'tool_calls',
  other: 'stop',
  error: 'stop',
};

export function newCompletionIdentity(model: string): CompletionIdentity {
  return { id: `chatcmpl-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
}

/** The fields every object starts with, in OpenAI's order. */
function head<Kind extends 'chat.completion' | 'chat.completion.chunk'>(identity: CompletionIdentity, object: Kind) {
  return { id: identity.id, object, created: identity.created, model: identity.model };
}

function openAiUsage(usage: Usage) {
  return { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.totalTokens };
}

/**
 * One `chat.completion.chunk` with one choice. With `include_usage` asked, OpenAI sends
 * `usage: null` on every chunk but the last (`usageChunk`), and no `usage` key at all without it.
 */
export function completionChunk(
  identity: CompletionIdentity,
  choice: { delta: { role?: 'assistant'; content?: string }; finishReason: FinishReason | null },
  includeUsage: boolean,
): CompletionChunk {
  return {
    ...head(identity, 'chat.completion.chunk'),
    choices: [
      {
        index: 0,
        delta: choice.delta,
        logprobs: null,
        finish_reason: choice.finishReason && OPENAI_FINISH_REASONS[choice.finishReason],
      },
    ],
    ...(includeUsage ? { usage: null } : {}),
  };
}

/** The chunk after the finish chunk, when `stream_options.include_usage` was asked. */
export function usageChunk(identity: CompletionIdentity, usage: Usage): CompletionChunk {
  return { ...head(identity, 'chat.completion.chunk'), choices: [], usage: openAiUsage(usage) };
}

/** The answer of a request without `stream: true`. `usage` is left out when the provider sent none. */
export function chatCompletion(
  identity: CompletionIdentity,
  reply: { content: string; finishReason: FinishReason; usage: Usage | null },
): z.infer<typeof completionSchema> {
  return {
    ...head(identity, 'chat.completion'),
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: reply.content },
        logprobs: null,
        finish_reason: OPENAI_FINISH_REASONS[reply.finishReason],
      },
    ],
    ...(reply.usage ? { usage: openAiUsage(reply.usage) } : {}),
  };
}

/** GET /v1/models: the one model this service serves. */
export function modelList(model: { id: string; created: number; ownedBy: string }): z.infer<typeof modelListSchema> {
  return { object: 'list', data: [modelObject(model)] };
}

export function modelObject(model: { id: string; created: number; ownedBy: string }): ModelObject {
  return { id: model.id, object: 'model', created: model.created, owned_by: model.ownedBy };
}
