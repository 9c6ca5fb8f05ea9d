import { AppError } from '../errors/app-error';

/**
 * Splits a server-sent event stream into the `data` of its events, as the HTML standard's
 * parsing rules say (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines end
 * in CR LF, LF or CR; a blank line ends an event; several `data` lines join with LF; comments and
 * other fields are skipped. Synchronous and allocation-light, because it runs once per upstream
 * chunk of every stream.
 *
 * A line, and the data of an event, may be at most `maxEventBytes` long, so that a server sending
 * an endless line or event fails the reply at once rather than filling memory. Lengths are counted
 * in UTF-16 code units of the decoded text: one per byte for ASCII, never more than the bytes.
 */
export class SseDataDecoder {
  private readonly text = new TextDecoder();
  /** The start of a line whose end has not arrived yet. */
  private partial = '';
  /** The data lines of the event being read. */
  private data: string[] = [];
  /** The length of those lines joined with LF. */
  private dataLength = 0;
  /** The last chunk ended in CR: an LF starting the next one belongs to the same line break. */
  private afterCarriageReturn = false;

  constructor(private readonly maxEventBytes: number) {}

  /**
   * Reads `bytes` and returns the data of every event they complete, in order.
   * @throws AppError upstream_error once a line or an event's data is longer than `maxEventBytes`.
   */
  push(bytes: Uint8Array): string[] {
    const decoded = this.text.decode(bytes, { stream: true });
    // An empty chunk, or the first bytes of a character: nothing to read, and a CR still pending.
    if (decoded === '') return [];
    let chunk = decoded;
    if (this.afterCarriageReturn && chunk.charCodeAt(0) === 10 /* LF */) chunk = chunk.slice(1);
    this.afterCarriageReturn = decoded.charCodeAt(decoded.length - 1) === 13 /* CR */;
    // Most streams never send CR; normalising once keeps the loop below to one separator.
    if (chunk.includes('\r')) chunk = chunk.replace(/\r\n?/g, '\n');
    const events: string[] = [];
    // Only the new chunk is searched for line ends: searching the start of a long line again with
    // every chunk made reading it quadratic.
    let start = 0;
    let end = chunk.indexOf('\n');
    if (end !== -1 && this.partial !== '') {
      const line = this.partial + chunk.slice(0, end);
      this.partial = '';
      this.readLine(line, events);
      start = end + 1;
      end = chunk.indexOf('\n', start);
    }
    for (; end !== -1; end = chunk.indexOf('\n', start)) {
      this.readLine(chunk.slice(start, end), events);
      start = end + 1;
    }
    if (start < chunk.length) this.keepPartial(chunk.slice(start));
    return events;
  }

  /** Keeps the start of a line until its end arrives, failing as soon as it is too long. */
  private keepPartial(piece: string): void {
    // Appending makes a rope in V8, copied once when the line ends, not once per chunk.
    this.partial += piece;
    if (this.partial.length > this.maxEventBytes) throw this.tooLong();
  }

  private readLine(line: string, events: string[]): void {
    if (line.length > this.maxEventBytes) throw this.tooLong();
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.length === 1 ? this.data[0]! : this.data.join('\n'));
      this.data = [];
      this.dataLength = 0;
      return;
    }
    if (!line.startsWith('data')) return;
    if (line.length === 4) {
      this.addData('');
    } else if (line.charCodeAt(4) === 58 /* : */) {
      this.addData(line.charCodeAt(5) === 32 /* space */ ? line.slice(6) : line.slice(5));
    }
  }

  private addData(value: string): void {
    this.dataLength += this.data.length === 0 ? value.length : value.length + 1;
    if (this.dataLength > this.maxEventBytes) throw this.tooLong();
    this.data.push(value);
  }

  private tooLong(): AppError {
    return new AppError('upstream_error', `The model provider sent an event longer than ${this.maxEventBytes} bytes.`);
  }
}
