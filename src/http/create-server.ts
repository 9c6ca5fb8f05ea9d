import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Express } from 'express';
import { AppError, toErrorBody } from '../errors/app-error';
import { requestIdOf } from './request-logging';

/**
 * The HTTP server for `app`. Requests Node cannot even parse (malformed request lines, junk or
 * oversized headers) never reach Express; they still get a JSON error instead of a bare status,
 * and an X-Request-Id like every other answer (a new one when the request could not be parsed).
 */
export function createHttpServer(app: Express): Server {
  const server = createServer(app);
  // Node answers an Expect other than 100-continue with a bare 417 unless told otherwise.
  server.on('checkExpectation', (request, response) => {
    const body = JSON.stringify(toErrorBody(new AppError('invalid_request', 'Only "Expect: 100-continue" is supported.')));
    response.writeHead(417, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-request-id': requestIdOf(request),
    });
    response.end(body);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || (error.code === 'ECONNRESET')) {
      socket.destroy();
      return;
    }
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    const appError = tooLarge
      ? new AppError('headers_too_large', 'The request headers are too large.')
      : new AppError('invalid_request', 'The request is not valid HTTP.');
    // A HEAD request's answer has no body, even when the request could not be parsed.
    const head = (error as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
    const body = head ? '' : JSON.stringify(toErrorBody(appError));
    socket.end(
      `HTTP/1.1 ${appError.status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${randomUUID()}\r\n` +
        'connection: close\r\n\r\n' +
        body,
    );
  });
  return server;
}
