import type { RequestHandler } from 'express';
import type { StreamTokens } from '../auth/stream-tokens';
import { AppError } from '../errors/app-error';
import { acceptOwner } from './authenticate';
import { chatIdSchema } from './chat-request-schema';
import { parseInput } from './parse-input';

/**
 * For `GET /api/chat/:chatId/stream` only, mounted before `authenticate`: a `token` query
 * parameter from `streamTokenRoutes` authenticates the request as the token's owner, for this
 * chat only. Without one, `authenticate` checks the Authorization header as on every route; with
 * one that is wrong, expired or for another chat, the answer is 401 whatever else was sent. The
 * request logs redact the parameter (request-logging.ts).
 */
export function acceptStreamToken(tokens: StreamTokens): RequestHandler {
  return async (request, response, next) => {
    const token = request.query.token;
    if (token === undefined) {
      next();
      return;
    }
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const ownerId = typeof token === 'string' ? await tokens.ownerOf(token, chatId) : undefined;
    if (ownerId === undefined) {
      response.setHeader('www-authenticate', 'Bearer');
      throw new AppError('unauthorized', 'This stream token is not valid for this chat, or has expired; ask for a new one.');
    }
    acceptOwner(request, response, ownerId);
    response.locals.streamToken = true;
    next();
  };
}
