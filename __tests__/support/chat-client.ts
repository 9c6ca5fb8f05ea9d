/** A finished HTTP exchange, body read to the end. */
export interface Exchange {
  status: number;
  headers: Headers;
  text: string;
  json(): any;
}

/** POSTs `body` (an object, or raw text) to /api/chat and reads the whole answer. */
export async function postChat(baseUrl: string, body: unknown, headers: Record<string, string> = {}): Promise<Exchange> {
  const response = await fetch(`${baseUrl}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return read(response);
}

export async function getPath(baseUrl: string, path: string): Promise<Exchange> {
  return read(await fetch(`${baseUrl}${path}`));
}

async function read(response: Response): Promise<Exchange> {
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

/** A user turn for chat `chatId`. */
export function userTurn(chatId: string, content: string, systemPrompt?: string) {
  const messages = systemPrompt === undefined ? [] : [{ role: 'system', content: systemPrompt }];
  return { chatId, messages: [...messages, { role: 'user', content }] };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A streaming response read bit by bit. */
export interface SseConnection {
  response: Response;
  /** Everything received so far. */
  text(): string;
  /** Reads until `check(text)` holds; rejects if the stream ends first. */
  readUntil(check: (text: string) => boolean): Promise<string>;
  /** Reads to the end of the stream. */
  readToEnd(): Promise<string>;
  /** Drops the connection. */
  hangUp(): void;
}

/** Sends a request and returns its response for reading as a stream. */
export async function openSse(url: string, init: RequestInit = {}): Promise<SseConnection> {
  const controller = new AbortController();
  const response = await fetch(url, { ...init, signal: controller.signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let received = '';
  const readMore = async () => {
    const { value, done } = await reader.read();
    if (!done) received += decoder.decode(value, { stream: true });
    return done;
  };
  return {
    response,
    text: () => received,
    async readUntil(check) {
      while (!check(received)) {
        if (await readMore()) throw new Error(`stream ended before the condition held: ${received}`);
      }
      return received;
    },
    async readToEnd() {
      while (!(await readMore()));
      return received;
    },
    hangUp: () => controller.abort(),
  };
}

/** Starts a chat turn as a stream. */
export function openChatStream(baseUrl: string, body: unknown): Promise<SseConnection> {
  return openSse(`${baseUrl}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Any request, a JSON body sent as such; the answer read whole, its body parsed when it is JSON. */
export async function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined };
}
