import { Router } from 'express';
import type { z } from 'zod';
import type { StreamTokens } from '../auth/stream-tokens';
import { credentialExpiryOf, ownerOf } from './authenticate';
import { chatIdSchema } from './chat-request-schema';
import { methodNotAllowed } from './error-handler';
import { parseInput } from './parse-input';
import type { streamTokenSchema } from './response-schemas';

/**
 * `POST /api/chat/:chatId/stream-token`: a short-lived token with which a browser's EventSource,
 * which cannot send an Authorization header, follows the caller's chat (`GET
 * /api/chat/:chatId/stream?token=…`). The chat need not exist yet: the token only ever opens this
 * owner's chat of this id. A token asked for with a JWT ends with it at the latest.
 */
export function streamTokenRoutes(tokens: StreamTokens): Router {
  const router = Router();
  router.post('/api/chat/:chatId/stream-token', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const grant = await tokens.issue({ chatId, ownerId: ownerOf(response), notAfter: credentialExpiryOf(response) });
    // A credential: no cache between here and the client may keep it.
    response.setHeader('cache-control', 'no-store');
    response.json({ token: grant.token, expiresAt: grant.expiresAt.toISOString() } satisfies z.infer<typeof streamTokenSchema>);
  });
  router.all('/api/chat/:chatId/stream-token', methodNotAllowed(['POST']));
  return router;
}
