import { z } from 'zod';
import type { MessageStatus, Role } from '../chat/ports';
import { finishReasonSchema } from '../chat/ui-message-part';
import { STATUS_BY_CODE, type ErrorBody, type ErrorCode } from '../errors/app-error';

/**
 * The JSON the service's own routes answer with (the OpenAI-compatible ones are in
 * openai-response-schemas.ts). The routes build their answers as these types, inferred from the
 * schemas, and the OpenAPI document (openapi-document.ts) shows the schemas themselves.
 */

/** Every value by name: the compiler checks each of these against its type both ways. */
const ROLES: { [Name in Role]: Name } = { system: 'system', user: 'user', assistant: 'assistant' };
const MESSAGE_STATUSES: { [Name in MessageStatus]: Name } = {
  streaming: 'streaming',
  completed: 'completed',
  cancelled: 'cancelled',
  interrupted: 'interrupted',
  failed: 'failed',
};

const timestamp = z.iso.datetime();
export const messageStatusSchema = z.enum(MESSAGE_STATUSES);

/** Every error code, in the order of `STATUS_BY_CODE`. */
export const ERROR_CODES = Object.keys(STATUS_BY_CODE) as [ErrorCode, ...ErrorCode[]];

/** `{ error: { code, message, details? } }`, with `code` one of `codes` (default: any). */
export function errorBodySchema(codes: readonly ErrorCode[] = ERROR_CODES) {
  return z.object({
    error: z.object({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional().meta({ description: 'Invalid input: `[{ path, message }]`, one per problem; `context_too_long`: `{ promptTokens, maxPromptTokens }`.' }),
    }),
  });
}

// The body errors are built as (app-error.ts) must be what this schema describes.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const errorBodyMatches: Same<z.infer<ReturnType<typeof errorBodySchema>>, ErrorBody> = true;
void errorBodyMatches;

export const healthSchema = z.object({
  status: z.literal('ok'),
  provider: z.string(),
  model: z.string(),
  simulated: z.boolean().meta({ description: 'True when no model provider is configured and the built-in simulator answers.' }),
  uptimeSeconds: z.number().int(),
});

export const readinessSchema = z.object({ status: z.literal('ready') });

export const chatSchema = z.object({
  chatId: z.string(),
  title: z.string().nullable(),
  systemPrompt: z.string().nullable().optional().meta({ description: 'Only when one chat is asked for (not in the list).' }),
  createdAt: timestamp,
  updatedAt: timestamp,
  messageCount: z.number().int(),
  lastReplyStatus: messageStatusSchema.nullable(),
});
export type ChatJson = z.infer<typeof chatSchema>;

export const chatListSchema = z.object({
  chats: z.array(chatSchema),
  nextCursor: z.string().nullable().meta({ description: 'Pass it back as `cursor` for the next page; null on the last one.' }),
});

const usageSchema = z.object({ promptTokens: z.number().int(), completionTokens: z.number().int(), totalTokens: z.number().int() });

export const messageSchema = z.object({
  id: z.string(),
  role: z.enum(ROLES),
  content: z.string(),
  status: messageStatusSchema,
  finishReason: finishReasonSchema.nullable(),
  createdAt: timestamp,
  usage: usageSchema.nullable(),
  usageEstimated: z.boolean(),
  model: z.string().nullable(),
  timeToFirstTokenMs: z.number().nullable(),
  durationMs: z.number().nullable(),
  systemPromptHash: z.string().nullable().meta({ description: 'SHA-256 of the system prompt the reply was generated with.' }),
});
export type MessageJson = z.infer<typeof messageSchema>;

export const messagePageSchema = z.object({
  chatId: z.string(),
  messages: z.array(messageSchema),
  nextBefore: z.string().nullable().meta({ description: 'Pass it as `before` for older messages; null when there are none.' }),
});

/** A message as the AI SDK's `UIMessage`: what else is known about it is in `metadata`. */
export const uiMessageSchema = z.object({
  id: z.string(),
  role: z.enum(ROLES),
  parts: z.array(z.object({ type: z.literal('text'), text: z.string() })),
  metadata: messageSchema.omit({ id: true, role: true, content: true }),
});
export type UiMessageJson = z.infer<typeof uiMessageSchema>;

export const uiMessagePageSchema = z.object({ chatId: z.string(), messages: z.array(uiMessageSchema) });

export const cancelledReplySchema = z.object({
  status: messageStatusSchema.meta({ description: 'The reply\'s status once stopped.' }),
  messageId: z.string(),
});

export const streamTokenSchema = z.object({
  token: z.string().meta({ description: 'Pass it as `?token=` to GET /api/chat/{chatId}/stream.' }),
  expiresAt: timestamp,
});
