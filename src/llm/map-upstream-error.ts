import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { AppError } from '../errors/app-error';

/** The SDK's error for a failed upstream call, as one of ours. Upstream messages stay in the log. */
export function mapUpstreamError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof APIConnectionTimeoutError) {
    return new AppError('upstream_timeout', 'The model provider did not answer in time.', { cause: error });
  }
  if (error instanceof APIConnectionError) {
    return new AppError('upstream_error', 'Could not reach the model provider.', { cause: error });
  }
  if (error instanceof APIError && error.status !== undefined) {
    if (error.status === 429) {
      return new AppError('upstream_rate_limited', 'The model provider is rate limiting requests; retry later.', {
        cause: error,
        retryAfterSeconds: retryAfterSeconds(error.headers),
      });
    }
    if (error.code === 'context_length_exceeded') {
      return new AppError('context_length_exceeded', "The conversation is longer than the model's context window.", {
        cause: error,
      });
    }
    if (error.code === 'content_filter') {
      return new AppError('content_filtered', "The model provider's content filter rejected the prompt.", { cause: error });
    }
    if (error.status === 408 || error.status === 504) {
      return new AppError('upstream_timeout', 'The model provider did not answer in time.', { cause: error });
    }
    return new AppError('upstream_error', `The model provider answered with HTTP ${error.status}.`, { cause: error });
  }
  return new AppError('upstream_error', "The model provider's response broke off.", { cause: error });
}

/** The upstream's `retry-after` (seconds or an HTTP date), else `retry-after-ms`, in whole seconds. */
function retryAfterSeconds(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after');
  if (value) {
    const seconds = Number(value);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
    const date = Date.parse(value);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }
  const milliseconds = Number(headers?.get('retry-after-ms'));
  return Number.isFinite(milliseconds) && milliseconds > 0 ? Math.ceil(milliseconds / 1000) : undefined;
}
