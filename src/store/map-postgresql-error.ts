import { AppError } from '../errors/app-error';

/** The driver adapter's names for "no answer at all". */
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'TooManyConnections', 'ConnectionClosed', 'SocketTimeout']);

/**
 * SQLSTATEs that mean "not now" rather than "wrong": a cancelled statement (statement_timeout),
 * too many connections, the server shutting down or starting, every connection exception (08…);
 * Node's socket errors; and Prisma's own codes for the same (unreachable, timed out, connection
 * closed, pool timeout, too many connections).
 */
const UNAVAILABLE_CODES = /^(57014|53300|57P0[1-3]|08...|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EPIPE|P1001|P1002|P1017|P2024|P2037)$/;

/** pg's errors that carry no code: a connection that dropped, or no pooled connection in time. */
const UNAVAILABLE_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect)/;

/**
 * A failure to get an answer from PostgreSQL (unreachable, overloaded, statement timeout) as
 * AppError `service_unavailable`, so that clients get 503 and retry rather than a 500; any other
 * error is returned as it is.
 */
export function mapPostgresqlError(error: unknown): unknown {
  if (error instanceof AppError) return error;
  if (isUnavailable(error, 0)) {
    return new AppError('service_unavailable', 'The database is not answering; retry shortly.', { retryAfterSeconds: 2, cause: error });
  }
  // The adapter names the failure by kind only ("UniqueConstraintViolation"); the log should
  // have PostgreSQL's own words and code as well.
  const { originalMessage, originalCode } = ((error as { cause?: unknown } | null)?.cause ?? {}) as Record<string, unknown>;
  if (typeof originalMessage !== 'string') return error;
  return Object.assign(new Error(`${originalMessage}${typeof originalCode === 'string' ? ` (SQLSTATE ${originalCode})` : ''}`, { cause: error }), {
    code: originalCode,
  });
}

/**
 * Prisma wraps the adapter's error, which wraps pg's: the reason can be on the error itself, in
 * its `cause`, or in `meta.driverAdapterError` (a raw query's P2010), so each is looked at.
 */
function isUnavailable(error: unknown, depth: number): boolean {
  if (typeof error !== 'object' || error === null || depth > 3) return false;
  const { code, kind, originalCode, message, cause, meta } = error as Record<string, unknown>;
  if ([code, originalCode].some((value) => typeof value === 'string' && UNAVAILABLE_CODES.test(value))) return true;
  if (typeof kind === 'string' && UNAVAILABLE_KINDS.has(kind)) return true;
  if (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message)) return true;
  const adapterError = (meta as { driverAdapterError?: unknown } | undefined)?.driverAdapterError;
  return isUnavailable(cause, depth + 1) || isUnavailable(adapterError, depth + 1);
}
