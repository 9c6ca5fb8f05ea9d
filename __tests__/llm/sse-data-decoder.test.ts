import { AppError } from '../../src/errors/app-error';
import { SseDataDecoder } from '../../src/llm/sse-data-decoder';

const bytes = (text: string) => new TextEncoder().encode(text);

/** Feeds `chunks` in order and returns every event's data. */
function decode(chunks: Array<string | Uint8Array>, maxEventBytes = 1024 * 1024): string[] {
  const decoder = new SseDataDecoder(maxEventBytes);
  return chunks.flatMap((chunk) => decoder.push(typeof chunk === 'string' ? bytes(chunk) : chunk));
}

/** What a decoder limited to `maxEventBytes` throws on `chunks`, or undefined if it reads them all. */
function failureOf(chunks: string[], maxEventBytes: number): unknown {
  try {
    decode(chunks, maxEventBytes);
    return undefined;
  } catch (error) {
    return error;
  }
}

const tooLong = (limit: number) =>
  expect.objectContaining({ code: 'upstream_error', message: `The model provider sent an event longer than ${limit} bytes.` });

describe('SseDataDecoder', () => {
  test.each([
    ['LF', 'data: {"a":1}\n\ndata: [DONE]\n\n'],
    ['CR LF', 'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n'],
    ['CR', 'data: {"a":1}\r\rdata: [DONE]\r\r'],
  ])('reads events whose lines end in %s', (_name, stream) => {
    expect(decode([stream])).toEqual(['{"a":1}', '[DONE]']);
  });

  test('joins an event cut anywhere, even inside a CR LF or a multi-byte character', () => {
    const stream = bytes('data: {"t":"é😀"}\r\n\r\ndata: x\r\n\r\n');
    for (let cut = 1; cut < stream.length; cut += 1) {
      expect(decode([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(['{"t":"é😀"}', 'x']);
    }
    expect(decode([...stream].map((byte) => Uint8Array.of(byte)))).toEqual(['{"t":"é😀"}', 'x']);
  });

  test('joins several data lines with LF, and takes "data:" with or without its space', () => {
    expect(decode(['data: one\ndata:two\ndata\ndata:  three\n\n'])).toEqual(['one\ntwo\n\n three']);
  });

  test('skips comments, other fields, events without data, and an event the stream never ended', () => {
    expect(decode([': ping\n\nevent: message\nid: 7\nretry: 10\n\nevent: x\ndata: kept\n\n\n\ndata: unfinished'])).toEqual(['kept']);
  });

  test('does not take a field that only starts with "data" for data', () => {
    expect(decode(['database: no\ndatum: no\ndata: yes\n\n'])).toEqual(['yes']);
  });

  test('takes a CR ending one chunk and an LF starting a later one as one line break, across empty chunks', () => {
    expect(decode(['data: a\r', '', '\ndata: b', '\r', '', '\n', '\r\n', 'data: c\r', '\n\r', '\n'])).toEqual(['a\nb', 'c']);
  });

  test('reads a long line cut into many small chunks in linear time', () => {
    // Searching the line so far again with every chunk took seconds here; reading each chunk once takes milliseconds.
    const line = `data: ${'x'.repeat(256 * 1024)}`;
    const chunks = Array.from({ length: Math.ceil(line.length / 32) }, (_, index) => bytes(line.slice(index * 32, index * 32 + 32)));
    const decoder = new SseDataDecoder(1024 * 1024);
    const events: string[] = [];
    const started = performance.now();
    for (const chunk of [...chunks, bytes('\r\n\r\n')]) events.push(...decoder.push(chunk));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(events).toEqual([line.slice('data: '.length)]);
  });

  test('reads a line or an event of exactly the limit', () => {
    const limit = 1024;
    const line = `data: ${'x'.repeat(limit - 'data: '.length)}`;
    expect(decode([line.slice(0, 100), line.slice(100), '\n\n'], limit)).toEqual([line.slice(6)]);
    const part = 'y'.repeat(limit / 2 - 1);
    expect(decode([`data: ${part}\ndata:\ndata: ${part}\n\n`], limit)).toEqual([`${part}\n\n${part}`]);
  });

  test.each<[string, string[]]>([
    ['a line in one chunk', [`data: ${'x'.repeat(1024)}\n\n`]],
    ['a comment line', [`: ${'x'.repeat(1023)}\n`]],
    ['a line cut over chunks that ends in the next one', ['data: ', 'x'.repeat(1000), `${'x'.repeat(100)}\n`]],
    ['a line with no line end yet', ['x'.repeat(600), 'x'.repeat(425)]],
    ['an event of many short data lines', Array.from({ length: 100 }, () => `data: ${'x'.repeat(10)}\n`)],
  ])('throws upstream_error as soon as %s is longer than the limit', (_name, chunks) => {
    expect(failureOf(chunks, 1024)).toBeInstanceOf(AppError);
    expect(failureOf(chunks, 1024)).toEqual(tooLong(1024));
  });

  test('fails a line with no line end on the chunk that takes it over the limit', () => {
    const decoder = new SseDataDecoder(1024);
    expect(decoder.push(bytes('x'.repeat(1024)))).toEqual([]);
    expect(() => decoder.push(bytes('x'))).toThrow(tooLong(1024));
  });
});
