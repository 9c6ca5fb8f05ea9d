import { spawnSync } from 'node:child_process';
import path from 'node:path';
import fc from 'fast-check';
import { createTokenCounter, inferContextWindow, inferEncoding } from '../../src/llm/token-counter';
import { TSX_LOADER } from '../support/server-process';

describe('inferEncoding', () => {
  test.each([
    ['gpt-4o', 'o200k_base'],
    ['gpt-4o-mini', 'o200k_base'],
    ['my-gpt-4o-deployment', 'o200k_base'],
    ['gpt-4.1-nano', 'o200k_base'],
    ['gpt-5', 'o200k_base'],
    ['o1-preview', 'o200k_base'],
    ['o3-mini', 'o200k_base'],
    ['o4-mini', 'o200k_base'],
    ['chatgpt-4o-latest', 'o200k_base'],
    ['gpt-4', 'cl100k_base'],
    ['gpt-4-turbo', 'cl100k_base'],
    ['gpt-35-turbo', 'cl100k_base'],
    ['gpt-3.5-turbo', 'cl100k_base'],
    ['llama3.2', 'cl100k_base'],
    ['pro1-model', 'cl100k_base'],
  ])('%s uses %s', (model, encoding) => {
    expect(inferEncoding(model)).toBe(encoding);
  });
});

describe('inferContextWindow', () => {
  test.each([
    ['gpt-5-mini', 400_000],
    ['gpt-4.1', 1_047_576],
    ['gpt-4o', 128_000],
    ['gpt-4-turbo', 128_000],
    ['o3-mini', 128_000],
    ['gpt-4-32k', 32_768],
    ['gpt-35-turbo', 16_385],
    ['gpt-3.5-turbo-0125', 16_385],
    ['gpt-4', 8_192],
    ['llama3.2', 8_192],
  ])('%s has %d tokens', (model, window) => {
    expect(inferContextWindow(model)).toBe(window);
  });
});

describe('createTokenCounter', () => {
  // Reference counts from OpenAI's tiktoken: "Hello, world!" is [13225, 11, 2375, 0] in
  // o200k_base and [9906, 11, 1917, 0] in cl100k_base.
  test.each([
    ['o200k_base', 'Hello, world!', 4],
    ['cl100k_base', 'Hello, world!', 4],
    ['o200k_base', 'Streaming tokens über alles 🚀', 6],
    ['cl100k_base', 'Streaming tokens über alles 🚀', 7],
    // A special-token lookalike in user text is plain text: < | endoftext | > in pieces.
    ['o200k_base', '<|endoftext|>', 7],
    ['cl100k_base', '<|endoftext|>', 7],
    ['cl100k_base', '', 0],
  ] as const)('%s counts %j as %d tokens', (encoding, text, tokens) => {
    const counter = createTokenCounter(encoding);
    expect(counter.encoding).toBe(encoding);
    expect(counter.count(text)).toBe(tokens);
  });

  // A started service that has not served a turn does not hold the tables (about 55 MiB of RSS).
  // In a process of its own: jest's module registry is not Node's `require.cache`.
  test('the tables are loaded by the first count, not when the counter is made', () => {
    const script = `
      const { createTokenCounter } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'llm', 'token-counter.ts'))});
      const loaded = () => Object.keys(require.cache).filter((file) => /gpt-tokenizer.*bpeRanks/.test(file)).length;
      const counter = createTokenCounter('o200k_base');
      const before = loaded();
      const tokens = counter.count('Hello, world!');
      console.log(JSON.stringify({ before, after: loaded(), tokens, again: counter.count('Hello, world!') }));`;
    const run = spawnSync(process.execPath, ['--import', TSX_LOADER, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ before: 0, after: 1, tokens: 4, again: 4 });
  });

  test('a message costs its content plus 4 tokens, and a reply is primed with 3', () => {
    const counter = createTokenCounter('cl100k_base');
    expect(counter.messageTokens({ role: 'user', content: 'Hello, world!' })).toBe(8);
    expect(counter.messageTokens({ role: 'assistant', content: 'ignored' }, 10)).toBe(14);
    expect(counter.replyPriming).toBe(3);
  });
});

describe('tokens and bytes', () => {
  // The chat service writes a turn before it has counted the chat's stored prompt when the prompt
  // has no more UTF-8 bytes than the tokens left for it: that needs every text to count at most
  // as many tokens as it has bytes (byte-level BPE: each token stands for one byte or more).
  test.each(['o200k_base', 'cl100k_base'] as const)('%s never counts more tokens than a text has UTF-8 bytes', (encoding) => {
    const counter = createTokenCounter(encoding);
    const property = fc.property(fc.string({ maxLength: 200, unit: fc.constantFrom('grapheme', 'binary', 'grapheme-ascii') }), (text) => {
      expect(counter.count(text)).toBeLessThanOrEqual(Buffer.byteLength(text));
    });
    fc.assert(property, { numRuns: 300 });
    for (const text of ['🚀🚀🚀', '\u0301\u0301\u0301', '中文字符测试', ' '.repeat(50), '\n\n\n', 'ａｂｃ', '\u{10FFFF}']) {
      expect(counter.count(text)).toBeLessThanOrEqual(Buffer.byteLength(text));
    }
  });
});
