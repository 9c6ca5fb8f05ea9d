import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { keyIdOf, userOwnerOf } from './authenticate';
import { traceContextOf } from './trace-context';

/** How much of a client-chosen text (a URL, a message quoting one) a log line takes. */
const LOGGED_TEXT_LENGTH = 120;

/**
 * `text` as a log line takes it: its first 120 characters and an ellipsis when it is longer. A
 * client chooses its URL, so without a bound every request could make a line of many kilobytes.
 */
export function clipForLog(text: string): string {
  return text.length > LOGGED_TEXT_LENGTH ? `${text.slice(0, LOGGED_TEXT_LENGTH)}…` : text;
}

/** Query parameters that carry credentials (a stream token for EventSource). */
const SECRET_PARAMETERS = new Set(['token']);

/**
 * `url` with the value of every credential parameter replaced by `[redacted]`. Names are read as
 * the query parser reads them (`tok%65n` is `token`), so that no spelling the service accepts
 * reaches the log.
 */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  const fields = url.slice(queryStart + 1).split('&').map((field) => {
    const name = Object.keys(parseQuery(field))[0];
    return name !== undefined && SECRET_PARAMETERS.has(name) ? `${field.split('=')[0]}=[redacted]` : field;
  });
  return `${url.slice(0, queryStart + 1)}${fields.join('&')}`;
}

/** Short and plain: safe to echo in a header and to write in the log. */
const ACCEPTED_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The request's id: the caller's `X-Request-Id` when it is short and plain, else a new UUID. */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && ACCEPTED_REQUEST_ID.test(given) ? given : randomUUID();
}

declare module 'http' {
  interface IncomingMessage {
    /** This request's logger: each of its lines carries the request's id (`requestId`). */
    log: Logger;
  }
}

/** Health probes every few seconds would drown everything else. */
const isProbe = (request: IncomingMessage) => request.url === '/healthz' || request.url === '/readyz';

/**
 * Logs each request once when it ends and gives every log line of the request its id, which is
 * echoed in the `X-Request-Id` response header. The closing line is pino-http's (same fields,
 * levels and messages), written here because pino-http made two child loggers per request, one of
 * them with the whole request serialized and redacted for lines this service never writes: 45 to
 * 60 KB of garbage per request.
 */
export function requestLogging(logger: Logger) {
  return (request: IncomingMessage, response: ServerResponse, next: () => void): void => {
    const startedAt = Date.now();
    const requestId = requestIdOf(request);
    response.setHeader('x-request-id', requestId);
    const log = logger.child({ requestId });
    request.log = log;
    if (!isProbe(request)) {
      let logged = false;
      const end = (error?: Error) => {
        if (logged) return;
        logged = true;
        logRequestEnd(log, request, response, Date.now() - startedAt, error);
      };
      // 'close' follows the end of every response, sent or cut off. 'error' is one the response
      // itself emits (a write after its end): logged, and never thrown out of the event loop.
      response.once('close', () => end());
      response.on('error', end);
    }
    next();
  };
}

/**
 * The closing line: at error with "request errored" for a 5xx or a failed response (the error
 * handler's "request failed" line has the error itself), at warn for a 4xx, else at info, as
 * "request completed" or, when the client left before the end, "request aborted".
 */
function logRequestEnd(log: Logger, request: IncomingMessage, response: ServerResponse, responseTime: number, error: Error | undefined): void {
  const summary = requestSummary(request, response, responseTime);
  if (error || response.statusCode >= 500) {
    log.error(summary, 'request errored');
  } else {
    log[response.statusCode >= 400 ? 'warn' : 'info'](summary, !request.readableAborted && response.writableEnded ? 'request completed' : 'request aborted');
  }
}

/**
 * What the closing line of a request says: which key (or end user) asked what, and how it went.
 * No headers: they hold credentials, and the client-chosen ones (the user agent) can be of any
 * length. No stream token either: the URL is logged without it.
 */
function requestSummary(request: IncomingMessage, response: ServerResponse, responseTime: number) {
  return {
    keyId: keyIdOf(response as Response),
    ownerId: userOwnerOf(response as Response),
    // The reply a chat turn or a resume streamed: its own lines ("reply ended") carry the same id.
    messageId: (response as Response).locals?.messageId as string | undefined,
    // The client's trace, as passed on to the model provider.
    traceparent: traceContextOf(request)?.traceparent,
    method: request.method,
    // Routers mounted on a path rewrite `url` while they run; `originalUrl` is what was asked.
    url: clipForLog(redactUrl((request as Request).originalUrl ?? request.url ?? '')),
    status: response.statusCode,
    responseTime,
  };
}
