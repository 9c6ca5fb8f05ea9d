import type { RequestHandler } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import { AppError } from '../errors/app-error';
import { ownerOf } from './authenticate';

/**
 * At most `perMinute` requests a minute for each API key (a fixed one-minute window), counted in
 * `store` when given (shared by every instance), else in this process.
 */
export function requestsPerMinute(perMinute: number, store?: Store): RequestHandler {
  return rateLimit({
    ...(store ? { store } : {}),
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (_request, response) => ownerOf(response),
    handler: (request, _response, next) => {
      const { rateLimit: info } = request as typeof request & { rateLimit?: { resetTime?: Date } };
      const resetTime = info?.resetTime?.getTime() ?? Date.now() + 60_000;
      const retryAfterSeconds = Math.max(1, Math.ceil((resetTime - Date.now()) / 1000));
      next(new AppError('rate_limited', `Too many requests for this API key; retry in ${retryAfterSeconds} s.`, { retryAfterSeconds }));
    },
  });
}
