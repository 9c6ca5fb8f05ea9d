import { SseDataDecoder } from '../../src/llm/sse-data-decoder';

const bytes = (text: string) => new TextEncoder().encode(text);

/** Feeds `chunks` in order and returns every event's data. */
function decode(chunks: Array<string | Uint8Array>): string[] {
  const decoder = new SseDataDecoder();
  return chunks.flatMap((chunk) => decoder.push(typeof chunk === 'string' ? bytes(chunk) : chunk));
}

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
});
