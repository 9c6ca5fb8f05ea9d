import { z } from 'zod';
import type { oas31, ZodOpenApiOperationObject, ZodOpenApiPathsObject } from 'zod-openapi';
import { uiMessageStreamPartSchema } from '../chat/ui-message-part';
import type { ErrorCode } from '../errors/app-error';
import {
  chatIdSchema,
  chatListQuerySchema,
  chatRequestSchema,
  chatUpdateSchema,
  lastEventIdSchema,
  messageListQuerySchema,
  type ShapeLimits,
} from './chat-request-schema';
import { errorResponses, json, requestIdParameter, success } from './openapi-responses';
import {
  cancelledReplySchema,
  chatListSchema,
  chatSchema,
  messagePageSchema,
  streamTokenSchema,
  uiMessagePageSchema,
} from './response-schemas';
import { uiChatRequestSchema } from './ui-chat-request';

/** What the paths of a running app depend on. */
export interface PathContext {
  /** Security requirements of /api and /v1 routes: none with auth off. */
  security: oas31.SecurityRequirementObject[];
  /** What any /api or /v1 request may meet before its route: the key check and the limits per key. */
  gateCodes: ErrorCode[];
  limits: ShapeLimits;
}

/** An operation's own parts; its request headers besides X-Request-Id, its success answers and the codes of its errors. */
type OperationSpec = Omit<ZodOpenApiOperationObject, 'responses' | 'requestParams'> & {
  requestParams?: { path?: z.ZodObject; query?: z.ZodObject };
  headers?: z.ZodRawShape;
  ok: ZodOpenApiOperationObject['responses'];
  codes: ErrorCode[];
};

const chatPath = z.object({ chatId: chatIdSchema });
const jsonBody = (schema: z.ZodType) => ({ required: true, content: { 'application/json': { schema } } });
/** What reading a JSON body may fail with. */
const BODY_CODES: ErrorCode[] = ['invalid_json', 'payload_too_large', 'unsupported_media_type'];
/** What every route that reads the database may fail with (a locked or unreachable database). */
const STORE_CODES: ErrorCode[] = ['service_unavailable', 'internal_error'];
/** What starting a reply may fail with, before its stream starts. */
const UPSTREAM_CODES: ErrorCode[] = ['context_length_exceeded', 'content_filtered', 'upstream_rate_limited', 'upstream_error', 'upstream_timeout'];

const eventStream = (description: string) =>
  success(200, description, {
    'text/event-stream': {
      schema: uiMessageStreamPartSchema,
    },
  });
const STREAM_FRAMING =
  'An SSE stream (`x-vercel-ai-ui-message-stream: v1`): one `id: <n>` and `data: <part as JSON>` per event, each part one of the schema\'s; ' +
  'the stream ends with `data: [DONE]`. A `: ping` comment keeps idle connections open.';

/** The /api routes: turns, resume and cancel, stream tokens, conversations. */
export function chatPaths(context: PathContext): ZodOpenApiPathsObject {
  const operation = (spec: OperationSpec) => {
    const { codes, ok, requestParams, headers, ...rest } = spec;
    return {
      tags: ['Chat'],
      security: context.security,
      ...rest,
      requestParams: { ...requestParams, header: z.object({ ...headers, 'X-Request-Id': requestIdParameter }) },
      responses: { ...ok, ...errorResponses(['invalid_request', ...context.gateCodes, ...codes], 'service') },
    } satisfies ZodOpenApiOperationObject;
  };
  return {
    '/api/chat': {
      post: operation({
        summary: 'Send a turn and stream the reply',
        description: 'Takes `{ chatId, messages }` (only the new messages) or the body the AI SDK\'s `useChat` sends.',
        requestBody: jsonBody(z.union([chatRequestSchema(context.limits), uiChatRequestSchema(context.limits)])),
        ok: { '200': eventStream(STREAM_FRAMING) },
        codes: [...BODY_CODES, 'context_too_long', 'chat_not_found', 'generation_in_progress', 'message_id_conflict', ...UPSTREAM_CODES, ...STORE_CODES],
      }),
    },
    '/api/chat/{chatId}/stream': {
      get: operation({
        summary: 'Resume the reply in progress',
        description: 'The route `useChat({ resume: true })` calls. With auth on, a browser\'s EventSource may authenticate with `?token=` from POST …/stream-token.',
        security: [...context.security, ...(context.security.length > 0 ? [{ streamToken: [] }] : [])],
        requestParams: { path: chatPath },
        headers: { 'Last-Event-ID': lastEventIdSchema.meta({ description: 'Send only the parts after this event id.' }) },
        ok: { '200': eventStream(STREAM_FRAMING), '204': success(204, 'Nothing is generating in this chat.') },
        codes: STORE_CODES,
      }),
      delete: operation({
        summary: 'Cancel the reply in progress',
        requestParams: { path: chatPath },
        ok: { '200': success(200, 'The reply was stopped.', json(cancelledReplySchema)), '204': success(204, 'Nothing was generating.') },
        codes: STORE_CODES,
      }),
    },
    '/api/chat/{chatId}/stream-token': {
      post: operation({
        summary: 'A short-lived token for EventSource',
        requestParams: { path: chatPath },
        ok: { '200': success(200, 'The token (sent with `cache-control: no-store`).', json(streamTokenSchema)) },
        codes: STORE_CODES,
      }),
    },
    '/api/chats': {
      get: operation({
        summary: 'List chats, newest activity first',
        tags: ['Conversations'],
        requestParams: { query: chatListQuerySchema },
        ok: { '200': success(200, 'A page of chats.', json(chatListSchema)) },
        codes: STORE_CODES,
      }),
    },
    '/api/chats/{chatId}': {
      get: operation({
        summary: 'A chat',
        tags: ['Conversations'],
        requestParams: { path: chatPath },
        ok: { '200': success(200, 'The chat, with its system prompt.', json(chatSchema)) },
        codes: ['chat_not_found', ...STORE_CODES],
      }),
      patch: operation({
        summary: 'Rename a chat or set its system prompt',
        tags: ['Conversations'],
        requestParams: { path: chatPath },
        requestBody: jsonBody(chatUpdateSchema),
        ok: { '200': success(200, 'The chat.', json(chatSchema)) },
        codes: [...BODY_CODES, 'chat_not_found', ...STORE_CODES],
      }),
      delete: operation({
        summary: 'Delete a chat (stopping a reply in progress)',
        tags: ['Conversations'],
        requestParams: { path: chatPath },
        ok: { '204': success(204, 'Deleted.') },
        codes: ['chat_not_found', ...STORE_CODES],
      }),
    },
    '/api/chats/{chatId}/messages': {
      get: operation({
        summary: 'A chat\'s messages, oldest first',
        description: 'With `format=ui`, the messages as the AI SDK\'s `UIMessage` (without a reply still streaming), and no `nextBefore`.',
        tags: ['Conversations'],
        requestParams: { path: chatPath, query: messageListQuerySchema },
        ok: { '200': success(200, 'A page of messages.', json(z.union([messagePageSchema, uiMessagePageSchema]))) },
        codes: ['chat_not_found', ...STORE_CODES],
      }),
    },
  };
}
