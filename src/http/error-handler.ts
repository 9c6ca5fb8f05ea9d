import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, toAppError, toErrorBody } from '../errors/app-error';
import { clipForLog } from './request-logging';

/** body-parser's error types, as ours. */
const BODY_ERRORS: Record<string, () => AppError> = {
  'entity.parse.failed': () => new AppError('invalid_json', 'The request body is not valid JSON.'),
  'entity.too.large': () => new AppError('payload_too_large', 'The request body is too large.'),
  'encoding.unsupported': () => new AppError('unsupported_media_type', 'The request body encoding is not supported.'),
  'charset.unsupported': () => new AppError('unsupported_media_type', 'The request body charset is not supported; use UTF-8.'),
  'encoding.invalid': () => new AppError('invalid_json', 'The request body is not valid UTF-8.'),
};

function classify(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const bodyError = error as { type?: string; status?: number; expose?: boolean };
  const known = bodyError.type ? BODY_ERRORS[bodyError.type] : undefined;
  if (known) return known();
  // Other client errors raised by Express, its router or body-parser (bad lengths, aborted
  // uploads, malformed percent-escapes in a path parameter, which carry no `expose`).
  if (typeof bodyError.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
    return new AppError('invalid_request', 'The request could not be read.');
  }
  return toAppError(error);
}

/** Every error as `{ error: { code, message } }` JSON; unknown ones are logged in full and answered generically. */
export const errorHandler: ErrorRequestHandler = (error, request, response, _next) => {
  const appError = classify(error);
  if (appError.status >= 500) {
    request.log.error({ err: error, code: appError.code, cause: appError.cause }, 'request failed');
  } else {
    // Client errors are logged without the error object: body-parser's carry the raw body.
    request.log.info({ code: appError.code, reason: clipForLog(appError.message) }, 'request refused');
  }
  if (response.headersSent) {
    // A stream already started reports its own errors; all that is left is to close it.
    if (!response.writableEnded) response.end();
    return;
  }
  if (appError.retryAfterSeconds !== undefined) response.setHeader('retry-after', String(appError.retryAfterSeconds));
  response.status(appError.status).json(toErrorBody(appError));
};

export const notFoundHandler: RequestHandler = (request, _response, next) => {
  next(new AppError('not_found', `No route for ${request.method} ${request.path}.`));
};

/** For a known path called with a method it does not serve. */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  return (request, response, next) => {
    response.setHeader('allow', allowed.join(', '));
    next(new AppError('method_not_allowed', `${request.method} is not allowed here; use ${allowed.join(' or ')}.`));
  };
}
