/**
 * A fake Azure OpenAI / OpenAI-compatible chat-completions server over real HTTP.
 *
 * It speaks the wire format described in /work/shared/notes/azure-openai-wire.md, quirks included
 * (Azure's id-less prompt-filter first frame, content_filter_results, `usage: null` on chunks when
 * usage was requested), so that integration tests run the real client code path (openai SDK, fetch,
 * SSE parsing, retries, aborts) instead of a mocked module.
 *
 * Routes:
 *   POST /openai/deployments/{deployment}/chat/completions?api-version=...   Azure classic (header api-key)
 *   POST /openai/v1/chat/completions                                        Azure v1 plane (Bearer or api-key; body.model = deployment)
 *   POST /v1/chat/completions                                               plain OpenAI-compatible (Bearer)
 *
 * Only node:http is used, so it can also back a benchmark without extra packages.
 */
import * as http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** Includes the query string, exactly as received (so `//` and missing api-version are visible). */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON, or the raw string if the body was not JSON. */
  body: any;
  /**
   * Which TCP connection carried it, numbered from 1 in order of arrival: two requests with the
   * same number came over one kept-alive connection.
   */
  connection: number;
}

export type StreamEnding =
  | 'done'
  | 'done-then-stall'
  | 'usage-then-stall'
  | 'reset'
  | 'stall'
  | 'end-without-done'
  | 'error-frame';

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export interface StreamScript {
  kind: 'stream';
  /** One content frame per element, with exactly this string as delta.content. */
  content: string[];
  /** Default 'stop'; null = no finish frame at all. */
  finishReason?: FinishReason | null;
  /**
   * Default {prompt 10, completion content.length, total sum}. Sent only when the request asked
   * stream_options.include_usage; null = never sent.
   */
  usage?: TokenUsage | null;
  /** Pause before each content frame (default 0). */
  delayMs?: number;
  /** Pause before the first content frame only, overriding delayMs for it. */
  firstFrameDelayMs?: number;
  /**
   * The usage rides on the finish frame, as some OpenAI-compatible servers send it, instead of
   * following it in a frame of its own (Azure's and OpenAI's way). Default false.
   */
  usageInFinish?: boolean;
  /**
   * Default 'done'.
   * - 'done-then-stall': everything 'done' sends, [DONE] included, then the response neither ends
   *   nor sends more; the connection stays open until the client goes away or close() is called.
   * - 'usage-then-stall': the finish frame and the usage, then nothing more: no [DONE], and the
   *   connection stays open the same way.
   * - 'reset': after the content frames (or `cutAfter` of them) the TCP connection is reset, with no
   *   finish frame, usage or [DONE].
   * - 'stall': after that point nothing more is sent; the connection stays open until the client
   *   goes away or close() is called.
   * - 'end-without-done': the response ends cleanly with no finish frame, no usage and no [DONE].
   * - 'error-frame': an `{"error": {...}}` frame, as OpenAI sends when a stream fails server-side,
   *   then [DONE] and the end of the response.
   */
  ending?: StreamEnding;
  /** For 'done': a pause between [DONE] and the end of the response, as a slow proxy may leave (default 0). */
  endDelayMs?: number;
  /** For reset/stall/end-without-done/error-frame: how many content frames to send before the ending. */
  cutAfter?: number;
  /** Default 'gpt-4o-2024-11-20' (the model name Azure reports, not the deployment name). */
  model?: string;
}

export interface ErrorScript {
  kind: 'error';
  status: number;
  /** Sent as JSON; a string is sent verbatim (e.g. an HTML gateway error page). */
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * A 200 event stream whose body is `text` over and over until `bytes` bytes have been sent, then the
 * end of the response, as a broken or hostile server might send: `'x'` makes one endless line with
 * no line end, `'data: x\n'` one event of endless data lines with no blank line to end it.
 */
export interface FloodScript {
  kind: 'flood';
  /** ASCII, so that `bytes` counts characters too. */
  text: string;
  bytes: number;
}

export type Script = StreamScript | ErrorScript | FloodScript;

export interface FakeUpstream {
  /** e.g. http://127.0.0.1:43123 (no trailing slash). */
  readonly url: string;
  /** The key it accepts. */
  readonly apiKey: string;
  /** The Azure deployment name it knows. */
  readonly deployment: string;
  /** Every chat-completions request, in arrival order, including ones answered with errors. */
  readonly requests: RecordedRequest[];
  /** Each incoming request that passes the route/auth checks takes the next queued script. */
  enqueue(...scripts: Script[]): void;
  /** Used when the queue is empty. Initially { kind: 'stream', content: ['Hello', ' world'] }. */
  setDefault(script: Script): void;
  /**
   * Resolves with Date.now() when the client side of request #index (index into `requests`) went away
   * before the fake finished writing the response. Never resolves for requests that completed
   * normally, for 'reset' endings (the fake cut them) or for connections destroyed by close().
   */
  clientGone(index: number): Promise<number>;
  /** Chat-completions responses currently open. */
  activeStreams(): number;
  /** Destroys open sockets and closes the server. */
  close(): Promise<void>;
}

export interface FakeUpstreamOptions {
  apiKey?: string;
  deployment?: string;
  /**
   * The deployment is a reasoning model (o1, o3, o4-mini, gpt-5...): like Azure, the fake then
   * refuses `max_tokens` and any `temperature` with 400 unsupported_parameter.
   */
  reasoningModel?: boolean;
  host?: string;
  port?: number;
}

const DEFAULT_MODEL = 'gpt-4o-2024-11-20';
const SYSTEM_FINGERPRINT = 'fp_fake';
/** A flood is written in blocks of about this size, under backpressure like every other write. */
const FLOOD_BLOCK_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Canned Azure error bodies (texts as Azure / OpenAI send them).

const UNAUTHORIZED_BODY = {
  error: {
    code: '401',
    message:
      'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
  },
};

const DEPLOYMENT_NOT_FOUND_BODY = {
  error: {
    code: 'DeploymentNotFound',
    message:
      'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.',
  },
};

const RESOURCE_NOT_FOUND_BODY = { error: { code: '404', message: 'Resource not found' } };

/** What a reasoning model answers to the parameters it does not take; undefined when it takes them all. */
function unsupportedByReasoningModels(body: Record<string, unknown>): unknown {
  if ('max_tokens' in body) {
    return {
      error: {
        message: "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        type: 'invalid_request_error',
        param: 'max_tokens',
        code: 'unsupported_parameter',
      },
    };
  }
  if ('temperature' in body) {
    return {
      error: {
        message: "Unsupported parameter: 'temperature' is not supported with this model.",
        type: 'invalid_request_error',
        param: 'temperature',
        code: 'unsupported_parameter',
      },
    };
  }
  return undefined;
}

/** What api.openai.com answers on the plain /v1 route for a bad key (different shape from Azure). */
function openAiInvalidKeyBody(): unknown {
  return {
    error: {
      message: 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  };
}

function safe(): { filtered: boolean; severity: string } {
  return { filtered: false, severity: 'safe' };
}

function safeCategories(): Record<string, { filtered: boolean; severity: string }> {
  return { hate: safe(), self_harm: safe(), sexual: safe(), violence: safe() };
}

export const azureErrors = {
  /** 429 with both retry headers; the openai SDK prefers retry-after-ms over retry-after. */
  rateLimited(retryAfterSeconds = 1, retryAfterMs?: number): ErrorScript {
    const ms = retryAfterMs ?? retryAfterSeconds * 1000;
    const unit = retryAfterSeconds === 1 ? 'second' : 'seconds';
    return {
      kind: 'error',
      status: 429,
      headers: { 'retry-after': String(retryAfterSeconds), 'retry-after-ms': String(ms) },
      body: {
        error: {
          code: '429',
          message: `Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry after ${retryAfterSeconds} ${unit}. Please contact Azure support service if you would like to further increase the default rate limit.`,
        },
      },
    };
  },

  /** Transient, retryable. */
  serverError(status: 500 | 503 = 500): ErrorScript {
    const body =
      status === 503
        ? { error: { code: 'ServiceUnavailable', message: 'The service is temporarily unable to process your request. Please try again later.' } }
        : {
            error: {
              code: 'InternalServerError',
              message:
                'The server had an error processing your request. Sorry about that! You can retry your request, or contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error.',
            },
          };
    return { kind: 'error', status, body };
  },

  /** 400, OpenAI-shaped body (Azure passes it through unchanged). Not retryable. */
  contextLengthExceeded(): ErrorScript {
    return {
      kind: 'error',
      status: 400,
      body: {
        error: {
          message:
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens. Please reduce the length of the messages.",
          type: 'invalid_request_error',
          param: 'messages',
          code: 'context_length_exceeded',
        },
      },
    };
  },

  /** 400 when the prompt itself trips Azure's content filter. */
  contentFilter(): ErrorScript {
    return {
      kind: 'error',
      status: 400,
      body: {
        error: {
          message:
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
          type: null,
          param: 'prompt',
          code: 'content_filter',
          status: 400,
          innererror: {
            code: 'ResponsibleAIPolicyViolation',
            content_filter_result: {
              hate: safe(),
              jailbreak: { filtered: false, detected: false },
              self_harm: safe(),
              sexual: safe(),
              violence: { filtered: true, severity: 'medium' },
            },
          },
        },
      },
    };
  },

  unauthorized(): ErrorScript {
    return { kind: 'error', status: 401, body: UNAUTHORIZED_BODY };
  },

  deploymentNotFound(): ErrorScript {
    return { kind: 'error', status: 404, body: DEPLOYMENT_NOT_FOUND_BODY };
  },
};

// ---------------------------------------------------------------------------------------------
// Internals

type Flavor = 'azure' | 'openai'; // azure = Azure frames (prompt filter frame, content_filter_results)

interface Deferred {
  promise: Promise<number>;
  resolve: (at: number) => void;
}

function deferred(): Deferred {
  let resolve!: (at: number) => void;
  const promise = new Promise<number>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** One chat-completions response in flight. */
class Exchange {
  /** Set once the response is over, for whatever reason; every writer checks it. */
  stopped = false;
  /** The fake itself cut the connection (reset ending or close()), so it is not "client gone". */
  cutByUs = false;
  /** Pending sleeps and flush waits, woken early by stop() so no loop or timer outlives the response. */
  private readonly wakers = new Set<() => void>();
  /** Settles once the latest write (hence all earlier ones) has been handed to the socket. */
  private flushed: Promise<void> = Promise.resolve();

  constructor(readonly res: http.ServerResponse) {}

  /** A pause that ends early when the exchange stops; unref'd so it never holds the process open. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.wakers.add(wake);
    });
  }

  /**
   * Writes one chunk, waiting under backpressure until it has left (its write callback) or the
   * response drained. False if the response is gone. Not 'drain' alone: Node 24.22+ and 26.9+ can
   * leave it unsent once the buffers are empty (the service's SSE writer says more).
   */
  async write(chunk: string): Promise<boolean> {
    if (this.stopped) return false;
    let ok = true;
    const flushed = new Promise<void>((resolve) => {
      const wake = (): void => {
        this.wakers.delete(wake);
        resolve();
      };
      this.wakers.add(wake);
      ok = this.res.write(chunk, wake);
    });
    this.flushed = flushed;
    if (ok) return true;
    let done = (): void => {};
    await Promise.race([
      flushed,
      new Promise<void>((resolve) => {
        done = resolve;
        this.res.on('drain', done);
        this.res.on('close', done);
      }),
    ]);
    this.res.off('drain', done);
    this.res.off('close', done);
    return !this.stopped;
  }

  /** Waits until the frames written so far reached the socket, so a reset does not swallow them. */
  async allFlushed(): Promise<boolean> {
    await this.flushed;
    return !this.stopped;
  }

  stop(): void {
    this.stopped = true;
    for (const wake of [...this.wakers]) wake();
  }
}

function frame(obj: unknown): string {
  return `data: ${JSON.stringify(obj)}\n\n`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const isText = typeof body === 'string';
  const payload = isText ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': String(Buffer.byteLength(payload)),
    ...headers,
  });
  res.end(payload);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function defaultUsage(content: string[]): TokenUsage {
  return { prompt_tokens: 10, completion_tokens: content.length, total_tokens: 10 + content.length };
}

// ---------------------------------------------------------------------------------------------

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const apiKey = options.apiKey ?? 'fake-api-key';
  const deployment = options.deployment ?? 'gpt-4o';
  const host = options.host ?? '127.0.0.1';

  const requests: RecordedRequest[] = [];
  const queue: Script[] = [];
  let defaultScript: Script = { kind: 'stream', content: ['Hello', ' world'] };
  const goneSignals = new Map<number, Deferred>();
  const open = new Set<Exchange>();
  let closing = false;
  let responseCounter = 0;
  const connectionNumbers = new WeakMap<object, number>();
  let connectionCounter = 0;

  const goneSignal = (index: number): Deferred => {
    let d = goneSignals.get(index);
    if (!d) {
      d = deferred();
      goneSignals.set(index, d);
    }
    return d;
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      // A bug in the fake must not crash the test process; answer 500 if still possible.
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { error: { code: 'FakeUpstreamBug', message: 'fake upstream failed' } });
      else res.destroy();
    });
  });
  server.on('connection', (socket) => connectionNumbers.set(socket, ++connectionCounter));
  // Streams may legitimately stay open a long time (stall tests); no server-side timeouts.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5_000;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    const queryAt = path.indexOf('?');
    const pathname = queryAt === -1 ? path : path.slice(0, queryAt);
    const params = new URLSearchParams(queryAt === -1 ? '' : path.slice(queryAt + 1));
    const raw = await readBody(req);

    // Anything that looks like a chat-completions call is recorded, even on a malformed path, so a
    // test can see what the client actually sent.
    if (!/\/chat\/completions\/?$/.test(pathname)) {
      sendJson(res, 404, RESOURCE_NOT_FOUND_BODY);
      return;
    }
    const body = parseBody(raw);
    const index = requests.length;
    requests.push({ method: req.method ?? '', path, headers: req.headers, body, connection: connectionNumbers.get(req.socket) ?? 0 });

    const exchange = new Exchange(res);
    open.add(exchange);
    res.on('close', () => {
      const wasFinished = res.writableFinished;
      exchange.stop();
      open.delete(exchange);
      if (!wasFinished && !exchange.cutByUs && !closing) goneSignal(index).resolve(Date.now());
    });

    const requestId = randomUUID();
    const baseHeaders: Record<string, string> = { 'x-request-id': requestId };

    // ---- routing and auth
    if (req.method !== 'POST' || pathname.includes('//')) {
      // Azure answers a doubled slash (trailing-slash endpoint bug) with a bare 404.
      sendJson(res, 404, RESOURCE_NOT_FOUND_BODY, baseHeaders);
      return;
    }
    const apiKeyHeader = req.headers['api-key'];
    const bearer = req.headers.authorization;
    const bearerOk = bearer === `Bearer ${apiKey}`;
    let flavor: Flavor;
    const classic = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(pathname);
    if (classic) {
      flavor = 'azure';
      baseHeaders['apim-request-id'] = requestId;
      if (apiKeyHeader !== apiKey) return sendJson(res, 401, UNAUTHORIZED_BODY, baseHeaders);
      if (!params.get('api-version')) return sendJson(res, 404, RESOURCE_NOT_FOUND_BODY, baseHeaders);
      if (decodeURIComponent(classic[1] ?? '') !== deployment) return sendJson(res, 404, DEPLOYMENT_NOT_FOUND_BODY, baseHeaders);
    } else if (pathname === '/openai/v1/chat/completions') {
      flavor = 'azure';
      baseHeaders['apim-request-id'] = requestId;
      if (!bearerOk && apiKeyHeader !== apiKey) return sendJson(res, 401, UNAUTHORIZED_BODY, baseHeaders);
      // On the v1 plane body.model names the deployment; a model name there is a client bug.
      if (isRecord(body) && body.model !== deployment) return sendJson(res, 404, DEPLOYMENT_NOT_FOUND_BODY, baseHeaders);
    } else if (pathname === '/v1/chat/completions') {
      flavor = 'openai';
      if (!bearerOk) return sendJson(res, 401, openAiInvalidKeyBody(), baseHeaders);
    } else {
      sendJson(res, 404, RESOURCE_NOT_FOUND_BODY, baseHeaders);
      return;
    }
    if (!isRecord(body)) {
      sendJson(
        res,
        400,
        { error: { message: 'The request body is not valid JSON.', type: 'invalid_request_error', param: null, code: null } },
        baseHeaders,
      );
      return;
    }

    if (options.reasoningModel) {
      const refused = unsupportedByReasoningModels(body);
      if (refused) return sendJson(res, 400, refused, baseHeaders);
    }

    // ---- scripted answer (only requests that passed the checks consume the queue)
    const script = queue.length > 0 ? (queue.shift() as Script) : defaultScript;
    if (script.kind === 'error') {
      sendJson(res, script.status, script.body, { ...baseHeaders, ...(script.headers ?? {}) });
      return;
    }
    if (script.kind === 'flood') {
      await flood(exchange, script, baseHeaders);
      return;
    }
    const streamOptions = body.stream_options;
    const includeUsage = isRecord(streamOptions) && streamOptions.include_usage === true;
    const id = `chatcmpl-fake${++responseCounter}${requestId.slice(0, 8)}`;
    if (body.stream === true) {
      await stream(exchange, script, flavor, id, includeUsage, baseHeaders);
    } else {
      await complete(exchange, script, flavor, id, baseHeaders);
    }
  }

  async function stream(
    ex: Exchange,
    script: StreamScript,
    flavor: Flavor,
    id: string,
    includeUsage: boolean,
    headers: Record<string, string>,
  ): Promise<void> {
    const { res } = ex;
    const azure = flavor === 'azure';
    const model = script.model ?? DEFAULT_MODEL;
    const created = Math.floor(Date.now() / 1000);
    const ending = script.ending ?? 'done';
    const whole = ending === 'done' || ending === 'done-then-stall' || ending === 'usage-then-stall';
    const contentCount = whole ? script.content.length : Math.min(script.cutAfter ?? script.content.length, script.content.length);

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
    res.flushHeaders();

    // Like OpenAI, every chunk carries `usage: null` when usage was requested; only the last has it set.
    const chunk = (choices: unknown[], usage?: TokenUsage): unknown => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices,
      ...(includeUsage ? { usage: usage ?? null } : {}),
    });
    const choice = (delta: Record<string, unknown>, finishReason: FinishReason | null, filters: unknown): unknown => ({
      index: 0,
      delta,
      finish_reason: finishReason,
      logprobs: null,
      ...(azure ? { content_filter_results: filters } : {}),
    });

    const frames: string[] = [];
    if (azure) {
      // Azure's prompt-filter frame: no id, model or object, empty choices.
      frames.push(
        frame({
          choices: [],
          created: 0,
          id: '',
          model: '',
          object: '',
          prompt_filter_results: [{ prompt_index: 0, content_filter_results: safeCategories() }],
        }),
      );
    }
    frames.push(frame(chunk([choice({ role: 'assistant', content: '', refusal: null }, null, {})])));
    for (const f of frames) if (!(await ex.write(f))) return;

    for (let i = 0; i < contentCount; i++) {
      const pause = i === 0 ? (script.firstFrameDelayMs ?? script.delayMs ?? 0) : (script.delayMs ?? 0);
      await ex.sleep(pause);
      const text = frame(chunk([choice({ content: script.content[i] }, null, safeCategories())]));
      if (!(await ex.write(text))) return;
    }
    if (ex.stopped) return;

    switch (ending) {
      case 'reset':
        // Make sure the frames already written reach the client before the RST.
        if (!(await ex.allFlushed())) return;
        ex.cutByUs = true;
        res.socket?.resetAndDestroy();
        return;
      case 'stall':
        return; // keep the connection open; the client or close() ends it
      case 'end-without-done':
        res.end();
        return;
      case 'error-frame':
        if (!(await ex.write(frame({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })))) return;
        if (!(await ex.write('data: [DONE]\n\n'))) return;
        res.end();
        return;
      case 'done':
      case 'done-then-stall':
      case 'usage-then-stall': {
        const finishReason = script.finishReason === undefined ? 'stop' : script.finishReason;
        const scripted = script.usage === undefined ? defaultUsage(script.content) : script.usage;
        const usage = includeUsage && scripted !== null ? scripted : undefined;
        const inFinish = script.usageInFinish === true && finishReason !== null;
        if (finishReason !== null && !(await ex.write(frame(chunk([choice({}, finishReason, {})], inFinish ? usage : undefined))))) return;
        if (usage && !inFinish && !(await ex.write(frame(chunk([], usage))))) return;
        if (ending === 'usage-then-stall') return; // no [DONE]; the client or close() ends it
        if (!(await ex.write('data: [DONE]\n\n')) || ending !== 'done') return;
        await ex.sleep(script.endDelayMs ?? 0);
        if (!ex.stopped) res.end();
        return;
      }
    }
  }

  /** Writes a flood script's body block by block, stopping early if the client goes away. */
  async function flood(ex: Exchange, script: FloodScript, headers: Record<string, string>): Promise<void> {
    const { res } = ex;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
    res.flushHeaders();
    const block = script.text.repeat(Math.ceil(FLOOD_BLOCK_BYTES / script.text.length));
    for (let left = script.bytes; left > 0; left -= block.length) {
      if (!(await ex.write(left >= block.length ? block : block.slice(0, left)))) return;
    }
    res.end();
  }

  /** Non-streaming answer: one chat.completion with the content joined. */
  async function complete(ex: Exchange, script: StreamScript, flavor: Flavor, id: string, headers: Record<string, string>): Promise<void> {
    const { res } = ex;
    await ex.sleep(script.firstFrameDelayMs ?? script.delayMs ?? 0);
    if (ex.stopped) return;
    if (script.ending === 'reset') {
      ex.cutByUs = true;
      res.socket?.resetAndDestroy();
      return;
    }
    if (script.ending === 'stall') return;
    const azure = flavor === 'azure';
    const usage = script.usage === undefined ? defaultUsage(script.content) : script.usage;
    const finishReason = script.finishReason === undefined ? 'stop' : script.finishReason;
    sendJson(
      res,
      200,
      {
        id,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: script.model ?? DEFAULT_MODEL,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: script.content.join(''), refusal: null },
            finish_reason: finishReason,
            logprobs: null,
            ...(azure ? { content_filter_results: safeCategories() } : {}),
          },
        ],
        ...(usage !== null ? { usage } : {}),
        ...(azure ? { prompt_filter_results: [{ prompt_index: 0, content_filter_results: safeCategories() }] } : {}),
      },
      headers,
    );
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    apiKey,
    deployment,
    requests,
    enqueue(...scripts: Script[]): void {
      queue.push(...scripts);
    },
    setDefault(script: Script): void {
      defaultScript = script;
    },
    clientGone(index: number): Promise<number> {
      return goneSignal(index).promise;
    },
    activeStreams(): number {
      return open.size;
    },
    close(): Promise<void> {
      closing = true;
      for (const ex of open) {
        ex.cutByUs = true;
        ex.stop(); // clears pending timers so nothing keeps the process alive
      }
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
