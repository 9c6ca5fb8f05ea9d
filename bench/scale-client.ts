import * as http from 'node:http';
import { performance } from 'node:perf_hooks';

/** A text part of the service's UI message stream. */
const TEXT_DELTA = '{"type":"text-delta"';

interface Exchange {
  status: number;
  body: string;
  /** ms from the request being sent to the first chunk that holds `marker` (the whole response without one). */
  firstMarkMs: number | null;
  totalMs: number;
}

/**
 * The requests bench/scale.ts times, one at a time on one keep-alive socket, each timed from
 * being sent to its response's end (a turn: also to its first text delta, the time to first token).
 */
export class ScaleClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    private readonly port: number,
    private readonly apiKey: string,
  ) {}

  /** GET /api/chats?limit=…[&cursor=…]: the page's time, its size and the next page's cursor. */
  async listChats(limit: number, cursor?: string | null): Promise<{ ms: number; chats: number; nextCursor: string | null }> {
    const query = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const exchange = await this.send('GET', `/api/chats?${query}`);
    expectStatus(exchange, 200, 'GET /api/chats');
    const page = JSON.parse(exchange.body) as { chats: unknown[]; nextCursor: string | null };
    return { ms: exchange.totalMs, chats: page.chats.length, nextCursor: page.nextCursor };
  }

  /** POST /api/chat, one user message on chat `chatId`: time to first token and to the stream's end. */
  async turn(chatId: string): Promise<{ ttftMs: number; totalMs: number }> {
    const body = JSON.stringify({ chatId, messages: [{ role: 'user', content: 'And what about the day after?' }] });
    const exchange = await this.send('POST', '/api/chat', body, TEXT_DELTA);
    expectStatus(exchange, 200, 'POST /api/chat');
    if (exchange.firstMarkMs === null || !exchange.body.includes('{"type":"finish"')) {
      throw new Error(`POST /api/chat on ${chatId}: the stream had no text or did not finish: ${exchange.body.slice(0, 300)}`);
    }
    return { ttftMs: exchange.firstMarkMs, totalMs: exchange.totalMs };
  }

  /** DELETE /api/chats/:chatId: the response's time. */
  async deleteChat(chatId: string): Promise<number> {
    const exchange = await this.send('DELETE', `/api/chats/${chatId}`);
    expectStatus(exchange, 204, 'DELETE /api/chats/:chatId');
    return exchange.totalMs;
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, path: string, body?: string, marker?: string): Promise<Exchange> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${this.apiKey}` };
      if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      const sentAt = performance.now();
      const request = http.request({ agent: this.agent, host: '127.0.0.1', port: this.port, method, path, headers }, (response) => {
        let text = '';
        let firstMarkMs: number | null = null;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
          if (firstMarkMs === null && marker !== undefined && text.includes(marker)) firstMarkMs = performance.now() - sentAt;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text, firstMarkMs, totalMs: performance.now() - sentAt }));
        response.on('error', reject);
      });
      request.setTimeout(60_000, () => request.destroy(new Error(`${method} ${path}: no answer within 60 s`)));
      request.on('error', reject);
      request.end(body);
    });
  }
}

function expectStatus(exchange: Exchange, status: number, what: string): void {
  if (exchange.status !== status) throw new Error(`${what}: status ${exchange.status} (expected ${status}): ${exchange.body.slice(0, 300)}`);
}
