import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { z } from 'zod';
import { AppError, toErrorBody, type ErrorBody, type ErrorCode } from '../errors/app-error';
import { errorHandler } from './error-handler';
import type { openAiErrorBodySchema } from './openai-response-schemas';

/** An error as OpenAI's API answers it, which its SDKs turn into their error classes. */
export type OpenAiErrorBody = z.infer<typeof openAiErrorBodySchema>;

/**
 * What an error raised for /v1 may carry as `details`, to fill OpenAI's `param` and `code`. An
 * AppError whose details are parseInput's list (`[{ path, message }]`) gets the first path as `param`.
 */
export interface OpenAiErrorDetails {
  param: string | null;
  code: string | null;
}

/**
 * OpenAI's `code` where it has its own word for one of ours (null where it sends none); every other
 * code, a code added later included, is sent as it is.
 */
const OPENAI_CODES: Partial<Record<ErrorCode, string | null>> = {
  invalid_request: null,
  invalid_json: null,
  not_found: null,
  internal_error: null,
  unauthorized: 'invalid_api_key',
  rate_limited: 'rate_limit_exceeded',
  upstream_rate_limited: 'rate_limit_exceeded',
  context_too_long: 'context_length_exceeded',
  content_filtered: 'content_filter',
};

/** OpenAI's `type` goes by status: its 401s are `invalid_request_error` too. */
function openAiType(status: number): string {
  if (status === 429) return 'requests';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** One of our error bodies (`toErrorBody`) in OpenAI's shape: same message, the same meaning in its words. */
export function toOpenAiErrorBody(body: ErrorBody, status: number): OpenAiErrorBody {
  const { code, message, details } = body.error;
  const given = openAiDetails(details);
  return {
    error: {
      message,
      type: openAiType(status),
      param: given?.param ?? null,
      code: given?.code !== undefined ? given.code : code in OPENAI_CODES ? (OPENAI_CODES[code] ?? null) : code,
    },
  };
}

function openAiDetails(details: unknown): Partial<OpenAiErrorDetails> | undefined {
  if (Array.isArray(details)) {
    const path = (details[0] as { path?: unknown } | undefined)?.path;
    return typeof path === 'string' && path !== '' ? { param: path } : undefined;
  }
  if (typeof details === 'object' && details !== null && 'param' in details) return details as OpenAiErrorDetails;
  return undefined;
}

/** `error`, answered in OpenAI's shape, or written as an SSE frame once a stream has started. */
export function openAiError(error: AppError): OpenAiErrorBody {
  return toOpenAiErrorBody(toErrorBody(error), error.status);
}

/**
 * The service's error handler, answering in OpenAI's shape: it stays the one place that decides
 * the status, the log line and Retry-After of every error (body-parser's included), and /v1 only
 * translates the body it sends. Mounted on /v1, it also takes the errors of `authenticate` and the
 * rate limit for /v1 paths, which run before the /v1 routes.
 */
export const openAiErrorHandler: ErrorRequestHandler = (error, request, response, next) => {
  const send = response.json.bind(response);
  response.json = (body: ErrorBody) => send(toOpenAiErrorBody(body, response.statusCode));
  errorHandler(error, request, response, next);
};

/** Unknown /v1 routes, as OpenAI answers them. */
export const openAiNotFound: RequestHandler = (request, _response, next) => {
  next(new AppError('not_found', `Invalid URL (${request.method} ${request.baseUrl}${request.path}).`));
};

/** `model` when it is not the one the service serves. */
export function modelNotFound(model: string): AppError {
  const details: OpenAiErrorDetails = { param: null, code: 'model_not_found' };
  return new AppError('not_found', `The model \`${model}\` does not exist or you do not have access to it.`, { details });
}

/** A field of the request this service does not honour: refused by name, never dropped. */
export function unsupportedParameter(param: string, message: string): AppError {
  const details: OpenAiErrorDetails = { param, code: 'unsupported_parameter' };
  return new AppError('invalid_request', message, { details });
}
