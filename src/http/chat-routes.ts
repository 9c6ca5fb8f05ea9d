import { Router } from 'express';
import type { ChatService } from '../chat/chat-service';
import { AppError } from '../errors/app-error';
import { chatIdSchema, chatRequestSchema } from './chat-request-schema';
import { methodNotAllowed } from './error-handler';
import { parseInput } from './parse-input';
import { streamGeneration } from './sse-response';

export function chatRoutes(chat: ChatService): Router {
  const router = Router();

  router.post('/api/chat', async (request, response) => {
    if (!request.is('application/json')) {
      throw new AppError('unsupported_media_type', 'Send the request body as JSON with Content-Type: application/json.');
    }
    const body = parseInput(chatRequestSchema, request.body, 'chat request');
    // 'close' on the response, not the request: the request's fires as soon as its body is read.
    const clientGone = new AbortController();
    response.on('close', () => clientGone.abort());
    const generation = await chat.startTurn(body, clientGone.signal, request.log.child({ chatId: body.chatId }));
    streamGeneration(generation, response);
  });
  router.all('/api/chat', methodNotAllowed(['POST']));

  router.get('/api/chats/:chatId/messages', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const messages = await chat.listMessages(chatId);
    response.json({
      chatId,
      messages: messages.map((message) => ({
        id: message.id,
        role: message.role,
        content: message.content,
        status: message.status,
        finishReason: message.finishReason,
        createdAt: message.createdAt.toISOString(),
      })),
    });
  });
  router.all('/api/chats/:chatId/messages', methodNotAllowed(['GET']));

  return router;
}
