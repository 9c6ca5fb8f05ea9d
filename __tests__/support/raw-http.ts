/**
 * HTTP exchanges at the byte level, for tests that send what `fetch` would refuse or rewrite:
 * invalid UTF-8 bodies, arbitrary header values, raw paths and requests that are not valid HTTP.
 * Only 127.0.0.1 is ever contacted.
 */
import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

/** A finished exchange; headers are lower-cased, values of repeated headers joined with ", ". */
export interface RawExchange {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawRequest {
  method: string;
  /** Sent exactly as given, query string included. */
  path: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer | string;
}

/** Keep-alive connections, so that thousands of requests do not exhaust ephemeral ports. */
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** Closes the pooled connections of `sendHttp`. */
export function closeHttpAgent(): void {
  agent.destroy();
}

/**
 * Sends one request with `node:http` to 127.0.0.1:`port` and reads the whole answer.
 * Rejects if no answer arrives within `timeoutMs`.
 */
export function sendHttp(port: number, input: RawRequest, timeoutMs = 10_000): Promise<RawExchange> {
  return attempt(port, input, timeoutMs).catch((error: NodeJS.ErrnoException & { reusedSocket?: boolean }) => {
    // A pooled connection the server had just closed: Node's advice is to send once more.
    if (error.reusedSocket && error.code === 'ECONNRESET') return attempt(port, input, timeoutMs);
    throw error;
  });
}

function attempt(port: number, input: RawRequest, timeoutMs: number): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, agent, method: input.method, path: input.path, headers: input.headers });
    const timer = setTimeout(() => outgoing.destroy(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    let answered = false;
    outgoing.on('response', (incoming) => {
      answered = true;
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        clearTimeout(timer);
        resolve({ status: incoming.statusCode ?? 0, headers: flatten(incoming.headers), body: Buffer.concat(chunks) });
      });
      incoming.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      // The server may answer (413) and close before the whole body is written: the answer counts.
      if (answered && (error.code === 'EPIPE' || error.code === 'ECONNRESET')) return;
      clearTimeout(timer);
      reject(Object.assign(error, { reusedSocket: outgoing.reusedSocket }));
    });
    outgoing.end(input.body);
  });
}

export interface RawOptions {
  timeoutMs?: number;
  /**
   * Read until the server closes the connection and take everything after the headers as the
   * body, whatever Content-Length says: for HEAD, whose answer must have no body at all.
   */
  readToClose?: boolean;
}

/**
 * Writes `bytes` on a new TCP connection to 127.0.0.1:`port`, reads until one whole response has
 * arrived (or the server closes the connection) and parses that response.
 */
export function sendRaw(port: number, bytes: Buffer | string, options: RawOptions = {}): Promise<RawExchange> {
  const { timeoutMs = 10_000, readToClose = false } = options;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (ended: boolean, error?: Error) => {
      let parsed: RawExchange | undefined;
      try {
        if (ended || !readToClose) parsed = parseResponse(Buffer.concat(chunks), readToClose && ended);
      } catch (parseError) {
        error = parseError as Error;
      }
      // Until the connection ends, an incomplete response may still be completed.
      if (!parsed && !error) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (parsed) resolve(parsed);
      else reject(error);
    };
    const timer = setTimeout(() => settle(false, new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (!settled) settle(false);
    });
    const ended = (error?: Error) => {
      if (settled) return;
      const received = JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 300));
      settle(true, error ?? new Error(`the connection ended without a complete HTTP response: ${received}`));
    };
    socket.on('end', () => ended());
    // A reset after the answer arrived (the server closed with our bytes unread) is not a failure.
    socket.on('error', (error) => ended(error));
    socket.write(bytes);
  });
}

/** A connection that reads only when told to, like a client that has stopped reading. */
export interface UnreadConnection {
  /** Writes more bytes: another request on the same keep-alive connection. */
  write(bytes: Buffer | string): void;
  /**
   * Reads until the bytes arriving from now on end with `marker` (a whole chunked response ends
   * with "0\r\n\r\n"), then resolves with everything received since the connection opened;
   * rejects if the connection ends first.
   */
  readUntilEndsWith(marker: string, timeoutMs?: number): Promise<Buffer>;
  /** Reads until the server ends or resets the connection, then resolves with everything received. */
  readToClose(timeoutMs?: number): Promise<{ received: Buffer; error: string | undefined }>;
  destroy(): void;
}

/**
 * Writes `bytes` on a new TCP connection to 127.0.0.1:`port` and reads nothing until asked: the
 * answer piles up in the socket buffers, and then in the server's, as with a client that never reads.
 */
export async function connectUnread(port: number, bytes: Buffer | string): Promise<UnreadConnection> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.pause();
  socket.write(bytes);
  const chunks: Buffer[] = [];
  // The last bytes received, enough to check a marker without joining megabytes on every chunk.
  let tail = '';
  let closed = false;
  let error: string | undefined;
  socket.on('error', (reason: NodeJS.ErrnoException) => (error = reason.code ?? reason.message));
  socket.on('close', () => (closed = true));
  const read = (done: () => boolean, timeoutMs: number) =>
    new Promise<Buffer>((resolve, reject) => {
      const finish = (failure?: Error) => {
        clearTimeout(timer);
        socket.off('data', onData).off('close', check).pause();
        if (failure) reject(failure);
        else resolve(Buffer.concat(chunks));
      };
      const check = () => {
        if (done()) finish();
        else if (closed) finish(new Error(`the connection closed first (${error ?? 'no error'}): ${JSON.stringify(tail)}`));
      };
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        tail = (tail + chunk.toString('latin1')).slice(-256);
        check();
      };
      const timer = setTimeout(() => finish(new Error(`not received in ${timeoutMs} ms: ${JSON.stringify(tail)}`)), timeoutMs);
      socket.on('data', onData).on('close', check).resume();
      check();
    });
  return {
    write: (more) => void socket.write(more),
    readUntilEndsWith(marker, timeoutMs = 10_000) {
      tail = '';
      return read(() => tail.endsWith(marker), timeoutMs);
    },
    async readToClose(timeoutMs = 10_000) {
      const received = await read(() => closed, timeoutMs);
      return { received, error };
    },
    destroy: () => socket.destroy(),
  };
}

/**
 * One HTTP/1.1 response from the start of `bytes`, or undefined while it is incomplete. With
 * `wholeRest`, the body is everything after the headers.
 */
export function parseResponse(bytes: Buffer, wholeRest = false): RawExchange | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd === -1) return undefined;
  const [statusLine = '', ...lines] = bytes.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!status) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const rest = bytes.subarray(headEnd + 4);
  if (wholeRest) return { status: Number(status[1]), headers, body: rest };
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const body = dechunk(rest);
    return body && { status: Number(status[1]), headers, body };
  }
  const length = Number(headers['content-length'] ?? 0);
  if (rest.length < length) return undefined;
  return { status: Number(status[1]), headers, body: rest.subarray(0, length) };
}

/** The body of a chunked transfer, or undefined while the last chunk has not arrived. */
function dechunk(bytes: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at);
    if (lineEnd === -1) return undefined;
    const size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) return Buffer.concat(parts);
    if (bytes.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}
