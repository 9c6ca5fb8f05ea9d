import { Router } from 'express';
import type { ChatService } from '../chat/chat-service';
import { AppError } from '../errors/app-error';
import { ownerOf } from './authenticate';
import { chatIdSchema, chatRequestSchema, lastEventIdSchema, type ShapeLimits } from './chat-request-schema';
import { methodNotAllowed } from './error-handler';
import type { StreamAdmission } from './open-stream-limit';
import { parseInput } from './parse-input';
import { streamGeneration } from './sse-response';
import { isUiChatRequest, uiChatRequestSchema } from './ui-chat-request';

export interface ChatRouteOptions {
  heartbeatMs: number;
  slowReaderMs: number;
  limits: ShapeLimits;
  /** Counts each event stream against its key's open streams; undefined (auth off): no limit. */
  admitStream: StreamAdmission | undefined;
}

export function chatRoutes(chat: ChatService, options: ChatRouteOptions): Router {
  const router = Router();
  const requestSchema = chatRequestSchema(options.limits);
  const uiRequestSchema = uiChatRequestSchema(options.limits);
  const { heartbeatMs, slowReaderMs, admitStream } = options;

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
    response.on('close', () => clientGone.abort());
    const turn = { ...body, ownerId: ownerOf(response) };
    const generation = await chat.startTurn(turn, clientGone.signal, request.log.child({ chatId: body.chatId }));
    streamGeneration(generation, response, { lastEventId: 0, heartbeatMs, slowReaderMs, log: request.log });
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
    streamGeneration(reply, response, { lastEventId, heartbeatMs, slowReaderMs, log: request.log });
  });

  router.delete('/api/chat/:chatId/stream', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const cancelled = await chat.cancel(chatId, ownerOf(response));
    if (!cancelled) {
      response.status(204).end();
      return;
    }
    response.json({ status: cancelled.status, messageId: cancelled.messageId });
  });
  router.all('/api/chat/:chatId/stream', methodNotAllowed(['GET', 'DELETE']));

  return router;
}
