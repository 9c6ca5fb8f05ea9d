import type { Request, RequestHandler, Response } from 'express';
import type { ApiKeys } from '../auth/api-keys';
import type { JwtVerifier } from '../auth/jwt-verifier';
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

/** The owner id of the end user whose JWT made the request (`jwt:…`); none for API keys. */
export function userOwnerOf(response: Response): string | undefined {
  return response.locals.userOwnerId as string | undefined;
}

/** When the credential of the request stops working (a JWT's `exp`); undefined for API keys. */
export function credentialExpiryOf(response: Response): Date | undefined {
  return response.locals.credentialExpiresAt as Date | undefined;
}

/** An API key id or an end user's owner id (`jwt:` prefix), as it came from either credential. */
export function acceptOwner(request: Request, response: Response, ownerId: string, credentialExpiresAt?: Date): void {
  response.locals.ownerId = ownerId;
  response.locals.credentialExpiresAt = credentialExpiresAt;
  if (ownerId.startsWith('jwt:')) {
    response.locals.userOwnerId = ownerId;
    request.log = request.log.child({ ownerId });
  } else {
    response.locals.keyId = ownerId;
    request.log = request.log.child({ keyId: ownerId });
  }
}

/** What API keys look like, and a JWT's three base64url parts (the last empty for `alg: none`). */
const JWT_PATTERN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Requires `Authorization: Bearer <key>` with a valid, unrevoked key, and makes the key's id the
 * owner of what the request touches; or, with `jwt` set, an end user's JWT, whose issuer and
 * subject make the owner. With `keys` undefined (auth off) everything is `local`'s. A request a
 * stream token has already authenticated (accept-stream-token.ts, on the one route that takes
 * one) goes through as it is.
 * @throws AppError unauthorized; service_unavailable when the JWT keys cannot be fetched.
 */
export function authenticate(keys: ApiKeys | undefined, jwt?: JwtVerifier): RequestHandler {
  return async (request, response, next) => {
    if (!keys) {
      response.locals.ownerId = LOCAL_OWNER;
      next();
      return;
    }
    if (response.locals.streamToken === true) {
      next();
      return;
    }
    const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(request.get('authorization') ?? '');
    const refuse = (message: string) => {
      response.setHeader('www-authenticate', 'Bearer');
      return new AppError('unauthorized', message);
    };
    if (!match) throw refuse('Send an API key as Authorization: Bearer <key>.');
    const bearer = match[1]!;
    if (jwt && !bearer.startsWith('lss_') && JWT_PATTERN.test(bearer)) {
      const check = await jwt(bearer);
      if (!check.ok) throw refuse(check.message);
      acceptOwner(request, response, check.ownerId, check.expiresAt);
      next();
      return;
    }
    const check = await keys.check(bearer);
    if (!check.ok) throw refuse(check.reason === 'revoked' ? 'This API key has been revoked.' : 'This API key is not valid.');
    acceptOwner(request, response, check.key.id);
    next();
  };
}
