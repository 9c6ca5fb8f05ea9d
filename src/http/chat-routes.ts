import { Router } from 'express';
import type { z } from 'zod';
import type { ChatService } from '../chat/chat-service';
import { CLIENT_GONE } from '../errors/abort-reasons';
import { AppError } from '../errors/app-error';
import { ownerOf } from './authenticate';
import { chatIdSchema, chatRequestSchema, lastEventIdSchema, type ShapeLimits } from './chat-request-schema';
import { methodNotAllowed } from './error-handler';
import type { StreamAdmission } from './open-stream-limit';
import { parseInput } from './parse-input';
import type { cancelledReplySchema } from './response-schemas';
import { streamGeneration, type StreamReaders } from './sse-response';
import { traceContextOf, traceIdOf } from './trace-context';
import { isUiChatRequest, uiChatRequestSchema } from './ui-chat-request';

export interface ChatRouteOptions {
  heartbeatMs: number;
  slowReaderMs: number;
  limits: ShapeLimits;
  /** Counts each event stream against its key's open streams; undefined (auth off): no limit. */
  admitStream: StreamAdmission | undefined;
  /** Where open event streams are counted (the metrics); undefined: not counted. */
  readers?: StreamReaders;
}

export function chatRoutes(chat: ChatService, options: ChatRouteOptions): Router {
  const router = Router();
  const requestSchema = chatRequestSchema(options.limits);
  const uiRequestSchema = uiChatRequestSchema(options.limits);
  const { heartbeatMs, slowReaderMs, admitStream, readers } = options;

  router.post('/api/chat', async (request, response) => {
    if (!request.is('application/json')) {
      throw new AppError('unsupported_media_type', 'Send the request body as JSON with Content-Type: application/json.');
    }
    // Two bodies: `{ chatId, messages }`, and the AI SDK's default one (useChat with no adapter).
    const body = isUiChatRequest(request.body)
      ? parseInput(uiRequestSchema, request.body, 'chat request')
      : parseInput(requestSchema, request.body, 'chat request');
    // Before the turn is stored or sent upstream.
    await admitStream?.(response);
    // 'close' on the response, not the request: the request's fires as soon as its body is read.
    const clientGone = new AbortController();
    response.on('close', () => clientGone.abort(CLIENT_GONE));
    const traceContext = traceContextOf(request);
    const turn = { ...body, ownerId: ownerOf(response), ...(traceContext && { traceContext }) };
    const log = request.log.child(traceContext ? { chatId: body.chatId, traceId: traceIdOf(traceContext) } : { chatId: body.chatId });
    const generation = await chat.startTurn(turn, clientGone.signal, log);
    // The request's closing log line names the reply, as the reply's own lines do.
    response.locals.messageId = generation.messageId;
    streamGeneration(generation, response, { lastEventId: 0, heartbeatMs, slowReaderMs, log: request.log, readers });
  });
  router.all('/api/chat', methodNotAllowed(['POST']));

  // Resume: the route and behaviour the AI SDK's `reconnectToStream` (useChat({ resume: true })) expects.
  router.get('/api/chat/:chatId/stream', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const lastEventId = parseInput(lastEventIdSchema, request.get('last-event-id'), 'Last-Event-ID header');
    const reply = await chat.activeReply(chatId, ownerOf(response));
    if (!reply) {
      response.status(204).end();
      return;
    }
    await admitStream?.(response);
    response.locals.messageId = reply.messageId;
    streamGeneration(reply, response, { lastEventId, heartbeatMs, slowReaderMs, log: request.log, readers });
  });

  router.delete('/api/chat/:chatId/stream', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const cancelled = await chat.cancel(chatId, ownerOf(response));
    if (!cancelled) {
      response.status(204).end();
      return;
    }
    response.json({ status: cancelled.status, messageId: cancelled.messageId } satisfies z.infer<typeof cancelledReplySchema>);
  });
  router.all('/api/chat/:chatId/stream', methodNotAllowed(['GET', 'DELETE']));

  return router;
}
