import { z } from 'zod';

/**
 * What the OpenAI-compatible routes (/v1) answer with, in OpenAI's shapes. openai-chunks.ts and
 * openai-errors.ts build their objects as the types inferred here; the OpenAPI document shows the
 * schemas.
 */

export const openAiFinishReasonSchema = z.enum(['stop', 'length', 'content_filter', 'tool_calls']);

/** How OpenAI answers an error; its SDKs turn it into their error classes. */
export const openAiErrorBodySchema = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string().meta({ description: '`invalid_request_error` (4xx), `requests` (429) or `server_error` (5xx).' }),
      param: z.string().nullable().meta({ description: 'The request field at fault, such as `messages[0].content`.' }),
      code: z.string().nullable(),
    }),
  })
  .meta({ id: 'OpenAiError' });

const usageSchema = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() });

/** The fields every object starts with, in OpenAI's order. */
const head = {
  id: z.string().meta({ description: '`chatcmpl-…`, the same in every chunk of one completion.' }),
  created: z.number().int().meta({ description: 'Unix seconds.' }),
  model: z.string(),
};

export const completionSchema = z.object({
  ...head,
  object: z.literal('chat.completion'),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({ role: z.literal('assistant'), content: z.string() }),
      logprobs: z.null(),
      finish_reason: openAiFinishReasonSchema,
    }),
  ),
  usage: usageSchema.optional().meta({ description: 'Left out when the provider sent none.' }),
});

export const completionChunkSchema = z
  .object({
    ...head,
    object: z.literal('chat.completion.chunk'),
    choices: z
      .array(
        z.object({
          index: z.number().int(),
          delta: z.object({ role: z.literal('assistant').optional(), content: z.string().optional() }),
          logprobs: z.null(),
          finish_reason: openAiFinishReasonSchema.nullable(),
        }),
      )
      .meta({ description: 'One choice; empty in the last chunk, which carries the usage.' }),
    usage: usageSchema
      .nullable()
      .optional()
      .meta({ description: 'With `stream_options.include_usage`: null in every chunk but the last. Absent without it.' }),
  })
  .meta({ id: 'ChatCompletionChunk' });

export const modelSchema = z.object({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
});

export const modelListSchema = z.object({ object: z.literal('list'), data: z.array(modelSchema) });
