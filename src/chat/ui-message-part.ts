import { z } from 'zod';
import type { FinishReason } from './ports';

/** Every finish reason, by name: the compiler checks this against `FinishReason` both ways. */
const FINISH_REASONS: { [Reason in FinishReason]: Reason } = {
  stop: 'stop',
  length: 'length',
  'content-filter': 'content-filter',
  'tool-calls': 'tool-calls',
  error: 'error',
  other: 'other',
};

/** How the model ended its reply, in the AI SDK's vocabulary. */
export const finishReasonSchema = z.enum(FINISH_REASONS);

const metadata = (description: string) => z.record(z.string(), z.unknown()).optional().meta({ description });

/**
 * The parts of the AI SDK UI message stream protocol (v1) this service sends, each as the JSON of
 * one SSE `data:` line. These schemas are the one description of the parts: the types below are
 * inferred from them, and the OpenAPI document shows them.
 * https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol
 */
export const uiMessageStreamPartSchema = z
  .discriminatedUnion('type', [
    z.object({
      type: z.literal('start'),
      messageId: z.string().meta({ description: 'The id of the stored assistant message.' }),
      messageMetadata: metadata('What went into the context: `contextMessages`, `droppedMessages`, `promptTokensEstimate`.'),
    }),
    z.object({ type: z.literal('text-start'), id: z.string() }),
    z.object({ type: z.literal('text-delta'), id: z.string(), delta: z.string() }),
    z.object({ type: z.literal('text-end'), id: z.string() }),
    z.object({
      type: z.literal('finish'),
      finishReason: finishReasonSchema.optional(),
      messageMetadata: metadata('`usage`, `usageEstimated`, `model`, `timeToFirstTokenMs` and `durationMs`.'),
    }),
    z.object({ type: z.literal('error'), errorText: z.string() }),
    z.object({
      type: z.literal('abort'),
      reason: z.string().optional().meta({ description: '`cancelled`, `shutdown` or `client_disconnected`.' }),
    }),
  ])
  .meta({ id: 'UiMessageStreamPart' });

/** `done` is sent as the protocol's closing `[DONE]` frame, not as JSON. */
const donePartSchema = z.object({ type: z.literal('done') });

/** The parts a generation appends: the stream's JSON parts, plus `done`. */
export const uiMessagePartSchema = z.discriminatedUnion('type', [...uiMessageStreamPartSchema.options, donePartSchema]);

export type UiMessagePart = z.infer<typeof uiMessagePartSchema>;

/** A part and its SSE event id: ids count up from 1 within a generation. */
export interface StreamEntry {
  id: number;
  part: UiMessagePart;
}
