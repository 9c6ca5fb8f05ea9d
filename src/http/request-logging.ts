import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

/** Short and plain: safe to echo in a header and to write in the log. */
const ACCEPTED_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The request's id: the caller's `X-Request-Id` when it is short and plain, else a new UUID. */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && ACCEPTED_REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Logs each request once when it ends and gives every log line of the request its id, which is
 * echoed in the `X-Request-Id` response header.
 */
export function requestLogging(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId(request: IncomingMessage, response: ServerResponse) {
      const id = requestIdOf(request);
      response.setHeader('x-request-id', id);
      return id;
    },
    // Every line of a request carries `requestId`; only the closing line carries the whole request.
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    customLogLevel(_request, response, error) {
      if (error || response.statusCode >= 500) return 'error';
      return response.statusCode >= 400 ? 'warn' : 'info';
    },
    // Health probes every few seconds would drown everything else.
    autoLogging: { ignore: (request) => request.url === '/healthz' || request.url === '/readyz' },
    serializers: {
      req: (request: { id: unknown; method: string; url: string; headers: Record<string, unknown> }) => ({
        id: request.id,
        method: request.method,
        url: request.url,
        userAgent: request.headers['user-agent'],
      }),
    },
  });
}
