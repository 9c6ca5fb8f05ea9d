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
export async function eventually<T>(check: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
