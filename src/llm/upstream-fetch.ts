import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

/**
 * `fetch` for the openai SDK over `node:http`, which keeps building, sending and retrying the
 * request. A successful answer's body is not wrapped in a web stream: the SDK gets a `Response`
 * with no body, and the caller takes the answer as Node's `IncomingMessage` from `bodyOf`. Read
 * through undici's `fetch` and web streams, each chunk of a reply went through a controller, a
 * queue and a promise per read: about as much work again per delta as parsing it (bench/analysis.md).
 * Answers that are not 2xx are read whole, for the SDK to make its error of.
 */
export interface UpstreamFetch {
  fetch: typeof fetch;
  /** The body of a successful answer `fetch` resolved with; undefined for any other Response. */
  bodyOf(response: Response): IncomingMessage | undefined;
}

/** Statuses whose answers have no body (fetch's "null body statuses"): a 204 is no reply to read. */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** An error answer's body is read up to this much (what the SDK shows of it); the rest is dropped. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * @param onRetry called for each request the SDK sends again after a retryable failure (it
 *   numbers its attempts in the `X-Stainless-Retry-Count` header, 0 for the first).
 */
export function createUpstreamFetch(onRetry?: () => void): UpstreamFetch {
  // Connections are kept and reused across turns, as undici's global pool did: every idle one
  // (Node's agent would otherwise close all but 256 after a burst, and open them again for the
  // next). A `timeout` is what makes the agent honour the provider's `Keep-Alive: timeout=N` and
  // drop an idle connection just before the provider would (a request sent on it as it closes
  // would fail); on a connection in use it only emits an event, which nothing here acts on.
  const options = { keepAlive: true, maxFreeSockets: Infinity, timeout: 10 * 60_000 };
  const agents = { 'http:': new http.Agent(options), 'https:': new https.Agent(options) };
  const bodies = new WeakMap<Response, IncomingMessage>();

  const upstreamFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      // The SDK hands over a Headers of its own: read as it is, not copied.
      const headers = init.headers instanceof Headers ? init.headers : new Headers(init.headers);
      const attempt = headers.get('x-stainless-retry-count');
      if (onRetry && attempt !== null && attempt !== '0') onRetry();
      const { signal } = init;
      if (signal?.aborted) {
        reject(abortError());
        return;
      }
      const agent = url.protocol === 'https:' ? agents['https:'] : agents['http:'];
      const request = (url.protocol === 'https:' ? https : http).request(url, { method: init.method ?? 'GET', headers: Object.fromEntries(headers), agent });
      let answer: IncomingMessage | undefined;
      // Until the body ends, aborting `signal` (the client left, or the SDK's timeout) drops the
      // connection, as fetch does.
      const onAbort = () => {
        request.destroy();
        answer?.destroy();
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const settled = () => signal?.removeEventListener('abort', onAbort);
      request.on('error', (error) => {
        settled();
        // What undici's fetch throws for a connection that failed: the SDK retries it.
        reject(new TypeError('fetch failed', { cause: error }));
      });
      request.on('response', (response) => {
        answer = response;
        // A Response the answer cannot make (a status or header it refuses) is a failed fetch,
        // as undici's would be, never an exception thrown into the event loop.
        const fail = (cause: unknown) => {
          settled();
          response.destroy();
          reject(new TypeError('fetch failed', { cause }));
        };
        const respond = (body: Buffer | null) => new Response(body, { status: response.statusCode, statusText: response.statusMessage, headers: toHeaders(response) });
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300 && !NULL_BODY_STATUSES.has(status)) {
          try {
            const result = respond(null);
            response.once('close', settled);
            // Its reader may start a while later (a /v1 stream first waits for its client): an
            // error before then (a reset) must wait for it rather than be thrown as unhandled. The
            // reader still sees it, as the stream stays errored.
            response.on('error', ignore);
            bodies.set(result, response);
            resolve(result);
          } catch (error) {
            fail(error);
          }
          return;
        }
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          if (bytes < MAX_ERROR_BODY_BYTES) chunks.push(chunk);
          bytes += chunk.length;
        });
        response.on('end', () => {
          settled();
          try {
            // A 204 or 304 has no body, whatever came.
            resolve(respond(NULL_BODY_STATUSES.has(status) ? null : Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES)));
          } catch (error) {
            fail(error);
          }
        });
        response.on('error', (error) => fail(error));
      });
      request.end(typeof init.body === 'string' || init.body instanceof Uint8Array ? init.body : undefined);
    });

  return { fetch: upstreamFetch as typeof fetch, bodyOf: (response) => bodies.get(response) };
}

function toHeaders(response: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = response.rawHeaders;
  for (let index = 0; index < raw.length; index += 2) headers.append(raw[index]!, raw[index + 1]!);
  return headers;
}

function abortError(): DOMException {
  return new DOMException('This operation was aborted', 'AbortError');
}

function ignore(): void {}
