import { AppError } from '../errors/app-error';

/** What a request that needs Redis gets while Redis cannot be reached. */
export function coordinationUnavailable(cause: unknown): AppError {
  if (cause instanceof AppError) return cause;
  return new AppError('service_unavailable', 'The service cannot reach its coordination store (Redis); retry shortly.', {
    cause,
    retryAfterSeconds: 2,
  });
}
