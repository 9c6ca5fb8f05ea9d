/**
 * Splits a server-sent event stream into the `data` of its events, as the HTML standard's
 * parsing rules say (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines end
 * in CR LF, LF or CR; a blank line ends an event; several `data` lines join with LF; comments and
 * other fields are skipped. Synchronous and allocation-light, because it runs once per upstream
 * chunk of every stream.
 */
export class SseDataDecoder {
  private readonly text = new TextDecoder();
  /** The start of a line whose end has not arrived yet. */
  private partial = '';
  /** The data lines of the event being read. */
  private data: string[] = [];
  /** The last chunk ended in CR: an LF starting the next one belongs to the same line break. */
  private afterCarriageReturn = false;

  /** Reads `bytes` and returns the data of every event they complete, in order. */
  push(bytes: Uint8Array): string[] {
    let chunk = this.text.decode(bytes, { stream: true });
    if (this.afterCarriageReturn && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.afterCarriageReturn = chunk.endsWith('\r');
    const events: string[] = [];
    let buffer = this.partial + chunk;
    // Most streams never send CR; normalising once keeps the loop below to one separator.
    if (buffer.includes('\r')) buffer = buffer.replace(/\r\n?/g, '\n');
    let start = 0;
    for (let end = buffer.indexOf('\n'); end !== -1; end = buffer.indexOf('\n', start)) {
      this.readLine(buffer.slice(start, end), events);
      start = end + 1;
    }
    this.partial = buffer.slice(start);
    return events;
  }

  private readLine(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.length === 1 ? this.data[0]! : this.data.join('\n'));
      this.data = [];
      return;
    }
    if (!line.startsWith('data')) return;
    if (line.length === 4) {
      this.data.push('');
    } else if (line.charCodeAt(4) === 58 /* : */) {
      this.data.push(line.charCodeAt(5) === 32 /* space */ ? line.slice(6) : line.slice(5));
    }
  }
}
