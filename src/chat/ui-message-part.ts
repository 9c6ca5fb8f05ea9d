import type { FinishReason } from './ports';

/**
 * The parts of the AI SDK UI message stream protocol (v1) this service sends, plus `done`,
 * which is sent as the protocol's closing `[DONE]` frame.
 * https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol
 */
export type UiMessagePart =
  | { type: 'start'; messageId: string; messageMetadata?: Record<string, unknown> }
  | { type: 'text-start'; id: string }
  | { type: 'text-delta'; id: string; delta: string }
  | { type: 'text-end'; id: string }
  | { type: 'finish'; finishReason?: FinishReason; messageMetadata?: Record<string, unknown> }
  | { type: 'error'; errorText: string }
  | { type: 'abort'; reason?: string }
  | { type: 'done' };

/** A part and its SSE event id: ids count up from 1 within a generation. */
export interface StreamEntry {
  id: number;
  part: UiMessagePart;
}
