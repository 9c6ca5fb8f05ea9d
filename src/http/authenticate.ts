import type { RequestHandler, Response } from 'express';
import type { ApiKeys } from '../auth/api-keys';
import { AppError } from '../errors/app-error';

/** The owner of chats when auth is off. */
export const LOCAL_OWNER = 'local';

/** The caller's owner id, set by `authenticate`. */
export function ownerOf(response: Response): string {
  return response.locals.ownerId as string;
}

/** The id of the API key that made the request, once `authenticate` accepted it; none with auth off. */
export function keyIdOf(response: Response): string | undefined {
  return response.locals.keyId as string | undefined;
}

/**
 * Requires `Authorization: Bearer <key>` with a valid, unrevoked key, and makes the key's id the
 * owner of what the request touches. With `keys` undefined (auth off) everything is `local`'s.
 */
export function authenticate(keys: ApiKeys | undefined): RequestHandler {
  return async (request, response, next) => {
    if (!keys) {
      response.locals.ownerId = LOCAL_OWNER;
      next();
      return;
    }
    const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(request.get('authorization') ?? '');
    const check = match ? await keys.check(match[1]!) : undefined;
    if (!check?.ok) {
      response.setHeader('www-authenticate', 'Bearer');
      const message = !match
        ? 'Send an API key as Authorization: Bearer <key>.'
        : check?.reason === 'revoked'
          ? 'This API key has been revoked.'
          : 'This API key is not valid.';
      throw new AppError('unauthorized', message);
    }
    response.locals.ownerId = check.key.id;
    response.locals.keyId = check.key.id;
    request.log = request.log.child({ keyId: check.key.id });
    next();
  };
}
