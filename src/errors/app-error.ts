/**
 * The one error taxonomy of the service. Every failure a client can see is an AppError with a
 * stable `code`; `status` maps it to HTTP in one table (`STATUS_BY_CODE`), and `toErrorBody`
 * serializes it the same way for JSON responses and SSE `error` parts.
 */
export const STATUS_BY_CODE = {
  invalid_request: 400,
  invalid_json: 400,
  context_length_exceeded: 400,
  context_too_long: 400,
  content_filtered: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  chat_not_found: 404,
  method_not_allowed: 405,
  generation_in_progress: 409,
  message_id_conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  upstream_rate_limited: 429,
  headers_too_large: 431,
  internal_error: 500,
  upstream_error: 502,
  service_unavailable: 503,
  upstream_timeout: 504,
} as const;

export type ErrorCode = keyof typeof STATUS_BY_CODE;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  /** Seconds a client should wait before retrying, passed on as `Retry-After`. */
  readonly retryAfterSeconds?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The HTTP status of `code`. */
  get status(): number {
    return STATUS_BY_CODE[this.code];
  }
}

/**
 * Thrown from body-parser's `verify` hook: body-parser (through http-errors) writes `status`
 * onto what is thrown, so a plain Error with a `type` is thrown there and mapped later.
 */
export function bodyVerifyError(type: string, message: string): Error {
  return Object.assign(new Error(message), { type, status: 400, expose: true });
}

const GENERIC_MESSAGE = 'An internal error occurred.';

/** Any thrown value as an AppError; unknown errors become a generic 500 that reveals nothing. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError('internal_error', GENERIC_MESSAGE, { cause: error });
}

export function toErrorBody(error: AppError): ErrorBody {
  const body: ErrorBody = { error: { code: error.code, message: error.message } };
  if (error.details !== undefined) body.error.details = error.details;
  return body;
}
