/**
 * Property-based fuzzing of the running service with hostile input: random JSON, wrong types,
 * huge and deeply nested values, invalid UTF-8, odd content types, path junk and header junk.
 * Every answer must be a 4xx JSON error, the process must stay up, nothing may reach the model and
 * the database must stay exactly as seeded. Seeds are fixed, so every run sends the same requests.
 *
 * The last group pins down bugs this fuzzing found (and that were fixed): each sends what the
 * broad properties leave out.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { closeHttpAgent, sendHttp, sendRaw, type RawExchange } from '../support/raw-http';
import { FIRST_KEY_LINE, listeningPort, serviceEnvironment, startServer, stopServers, type ServerProcess } from '../support/server-process';
import { startTestService, type TestService } from '../support/test-service';

const MAX_MESSAGES = 50;
const MAX_CHARACTERS = 100_000;
/** `[server] body_limit = "1mb"`: body-parser counts a megabyte as 2^20 bytes. */
const BODY_LIMIT = 1024 * 1024;
/** Node's default --max-http-header-size, which counts the URL and every header name and value. */
const MAX_HEADER_BYTES = 16 * 1024;
const SEEDED_CHAT_ID = '7f1c2a9e-3b4d-4e5f-8a6b-9c0d1e2f3a4b';
const UNKNOWN_CHAT_ID = '5d6e7f80-9a1b-4c2d-8e3f-a4b5c6d7e8f9';
/** The ids the service accepts (chat and message ids): "not this shape" means "refused". */
const ID_SHAPE = /^[A-Za-z0-9_-]{1,128}$/;
const ROLES = ['system', 'user', 'assistant'];

let upstream: FakeUpstream;
let service: TestService;
let port: number;
let key: string;
let seeded: DatabaseState;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream, auth: true, configToml: '[limits]\nrequests_per_minute = 1000000\n' });
  expect(service.config.limits).toMatchObject({ max_messages_per_request: MAX_MESSAGES, max_message_characters: MAX_CHARACTERS });
  expect(service.config.server.body_limit).toBe('1mb');
  port = Number(new URL(service.url).port);
  const created = await service.keys!.create('fuzz');
  key = created.key;
  await seedChat(created.record.id);
  seeded = await databaseState();
});

afterAll(async () => {
  closeHttpAgent();
  await service.close();
  await upstream.close();
});

// ---------------------------------------------------------------------------------------------
// Checks

/** One finished exchange owned by the fuzz key: a refused request must not touch it either. */
async function seedChat(ownerId: string): Promise<void> {
  const replyId = randomUUID();
  await service.store.beginTurn({
    chatId: SEEDED_CHAT_ID,
    ownerId,
    systemPrompt: 'Be brief.',
    title: 'Seeded',
    messages: [{ role: 'user', content: 'Hello', tokenCount: 1 }],
    reply: { id: replyId, model: 'gpt-4o', systemPromptHash: 'seeded', instanceId: service.instanceId },
  });
  await service.store.finishReply(replyId, {
    content: 'Hi.',
    status: 'completed',
    finishReason: 'stop',
    usage: { promptTokens: 12, completionTokens: 2, totalTokens: 14 },
    usageEstimated: false,
    tokenCount: 2,
    timeToFirstTokenMs: 5,
    durationMs: 9,
  });
}

async function databaseState() {
  return {
    counts: (
      await service.query(
        'SELECT (SELECT COUNT(*) FROM Chat) AS chats, (SELECT COUNT(*) FROM Message) AS messages, (SELECT COUNT(*) FROM ApiKey) AS apiKeys',
      )
    )[0],
    chats: await service.query('SELECT * FROM Chat ORDER BY id'),
    messages: await service.query('SELECT * FROM Message ORDER BY seq'),
    apiKeys: await service.query('SELECT * FROM ApiKey ORDER BY id'),
  };
}
type DatabaseState = Awaited<ReturnType<typeof databaseState>>;

/** After every request: the database is as seeded and the model was never called. */
async function expectNothingChanged(): Promise<void> {
  expect(await databaseState()).toEqual(seeded);
  expect(upstream.requests).toHaveLength(0);
}

/** After every property: the process still answers. */
async function expectStillUp(): Promise<void> {
  const health = await sendHttp(port, { method: 'GET', path: '/healthz' });
  expect(health.status).toBe(200);
  expect(JSON.parse(health.body.toString('utf8'))).toMatchObject({ status: 'ok' });
  await expectNothingChanged();
}

interface Refusal {
  status?: number | number[];
  code?: string | string[];
  /** HEAD answers carry no body; OPTIONS may be a bodiless 204 (CORS preflight). */
  method?: string;
}

/** `answer` is a 4xx `{ error: { code, message } }` JSON answer matching `expected`, without a stack trace. */
function expectRefusal(answer: RawExchange, expected: Refusal = {}): void {
  const text = answer.body.toString('utf8');
  const seen = `${answer.status} (${answer.headers['content-type'] ?? 'no content-type'}) ${JSON.stringify(text.slice(0, 300))}`;
  if (expected.method === 'OPTIONS' && answer.status === 204) {
    if (answer.body.length > 0) mismatch('a 204 without a body', seen);
    return;
  }
  if (answer.status < 400 || answer.status > 499) mismatch('a 4xx answer', seen);
  const statuses = expected.status === undefined ? undefined : [expected.status].flat();
  if (statuses && !statuses.includes(answer.status)) mismatch(`status ${statuses.join(' or ')}`, seen);
  if (answer.headers['content-type'] !== 'application/json; charset=utf-8') mismatch('application/json; charset=utf-8', seen);
  // Refusals from Node's HTTP layer too: a client can always quote the id when it reports one.
  if (!/^[\x21-\x7e]{1,128}$/.test(String(answer.headers['x-request-id'] ?? ''))) mismatch('an X-Request-Id header', seen);
  if (expected.method === 'HEAD') {
    if (answer.body.length > 0) mismatch('no body for HEAD', seen);
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    mismatch('a JSON body', seen);
  }
  const error = isRecord(body) && Object.keys(body).length === 1 ? body.error : undefined;
  if (!isRecord(error) || typeof error.code !== 'string' || typeof error.message !== 'string') {
    mismatch('{ error: { code, message } }', seen);
  }
  const codes = expected.code === undefined ? undefined : [expected.code].flat();
  if (codes && !codes.includes(error.code)) mismatch(`code ${codes.join(' or ')}`, seen);
  if (/\bat .+\.(ts|js):\d+/.test(text)) mismatch('no stack trace', seen);
}

function mismatch(expected: string, seen: string): never {
  throw new Error(`expected ${expected}, got ${seen}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * True when `value` might be accepted as a chat turn: the README's rules, applied loosely, so that
 * false means "certainly invalid". A body without `chatId` may be the AI SDK's (`id`, `trigger`,
 * messages with `parts`): those count as possibly valid whenever their `id` has the id shape.
 */
function couldBeValidChatRequest(value: unknown): boolean {
  if (isRecord(value) && !('chatId' in value) && typeof value.id === 'string' && ID_SHAPE.test(value.id)) return true;
  if (!isRecord(value) || typeof value.chatId !== 'string' || !ID_SHAPE.test(value.chatId)) return false;
  const { messages } = value;
  if (!Array.isArray(messages) || messages.length < 1 || messages.length > MAX_MESSAGES) return false;
  const wellFormed = messages.every(
    (message) =>
      isRecord(message) &&
      Object.keys(message).every((name) => name === 'role' || name === 'content') &&
      ROLES.includes(message.role as string) &&
      typeof message.content === 'string' &&
      message.content.length >= 1 &&
      message.content.length <= MAX_CHARACTERS,
  );
  return wellFormed && messages.some((message) => (message as { role: string }).role !== 'system');
}

const bearer = () => ({ authorization: `Bearer ${key}` });
const JSON_TYPE = { 'content-type': 'application/json' };

function postChat(body: string | Buffer, headers: OutgoingHttpHeaders = JSON_TYPE, timeoutMs?: number): Promise<RawExchange> {
  return sendHttp(port, { method: 'POST', path: '/api/chat', headers: { ...bearer(), ...headers }, body }, timeoutMs);
}

/** Sets `name` as an own property, even `__proto__`, as JSON.parse on the server would. */
function setOwn(target: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const textArb = fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' });
const roleArb = fc.constantFrom(...ROLES);
const chatIdArb = fc.oneof(fc.uuid(), fc.constant(SEEDED_CHAT_ID));

/** 1 to 5 valid messages, at least one of them a user or assistant message. */
const validMessagesArb = fc
  .tuple(
    fc.array(fc.record({ role: roleArb, content: textArb }), { maxLength: 4 }),
    fc.record({ role: fc.constantFrom('user', 'assistant'), content: textArb }),
    fc.nat(),
  )
  .map(([others, speaker, at]) => {
    const messages = [...others];
    messages.splice(at % (messages.length + 1), 0, speaker);
    return messages;
  });

const validChatRequestArb = fc.record({ chatId: chatIdArb, messages: validMessagesArb });

/** Any JSON value that is not a string. */
const nonStringArb = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
);

const ABSENT = Symbol('absent');

/** A string that is no id: empty, too long, or with a character outside the set. */
const notIdArb = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.constant(''),
  fc.uuid().map((uuid) => ` ${uuid}`),
  fc.uuid().map((uuid) => `{${uuid}}`),
  fc.uuid().map((uuid) => uuid.replace('-', '.')),
  fc.integer({ min: 129, max: 300 }).map((length) => 'a'.repeat(length)),
).filter((text) => !ID_SHAPE.test(text));

const tooLongContentArb = fc.integer({ min: MAX_CHARACTERS + 1, max: MAX_CHARACTERS + 100 }).map((length) => 'x'.repeat(length));

/** A whole `messages` value that is invalid however its messages are changed afterwards. */
const badMessagesArb = fc.oneof(
  nonStringArb.filter((value) => !Array.isArray(value)),
  fc.string(),
  fc.constant([]),
  fc.constant(ABSENT),
  fc.array(fc.record({ role: roleArb, content: textArb }), { minLength: MAX_MESSAGES + 1, maxLength: MAX_MESSAGES + 10 }),
  fc.array(fc.record({ role: fc.constant('system'), content: textArb }), { minLength: 1, maxLength: 5 }),
);

/** One change that makes a valid chat request invalid; later changes cannot make it valid again. */
const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('chatId' as const), value: fc.oneof(nonStringArb, notIdArb, fc.constant(ABSENT)) }),
  fc.record({ kind: fc.constant('messages' as const), value: badMessagesArb }),
  fc.record({
    kind: fc.constant('message' as const),
    index: fc.nat(),
    value: fc.oneof(nonStringArb.filter((value) => !isRecord(value)), fc.string()),
  }),
  fc.record({
    kind: fc.constant('role' as const),
    index: fc.nat(),
    value: fc.oneof(
      nonStringArb,
      fc.constant(ABSENT),
      fc.string().filter((role) => !ROLES.includes(role)),
      fc.constantFrom('User', 'SYSTEM', 'tool', 'function', 'developer', ' user'),
    ),
  }),
  fc.record({
    kind: fc.constant('content' as const),
    index: fc.nat(),
    value: fc.oneof(nonStringArb, fc.constant(ABSENT), fc.constant(''), tooLongContentArb),
  }),
  fc.record({
    kind: fc.constant('extraKey' as const),
    index: fc.nat(),
    name: fc
      .oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'toString', 'name', 'Role', 'content '))
      .filter((name) => name !== 'role' && name !== 'content'),
    value: fc.jsonValue({ maxDepth: 2 }),
  }),
);
type Mutation = typeof mutationArb extends fc.Arbitrary<infer T> ? T : never;

function applyMutation(body: Record<string, unknown>, mutation: Mutation): void {
  const assign = (target: Record<string, unknown>, name: string, value: unknown) => {
    if (value === ABSENT) delete target[name];
    else setOwn(target, name, value);
  };
  if (mutation.kind === 'chatId' || mutation.kind === 'messages') {
    assign(body, mutation.kind, mutation.value);
    return;
  }
  const { messages } = body;
  if (!Array.isArray(messages) || messages.length === 0) return;
  const index = mutation.index % messages.length;
  if (mutation.kind === 'message') {
    messages[index] = mutation.value;
    return;
  }
  const message: unknown = messages[index];
  if (!isRecord(message)) return;
  if (mutation.kind === 'extraKey') setOwn(message, mutation.name, mutation.value);
  else assign(message, mutation.kind, mutation.value);
}

/** A chat request with one or more fields of the wrong type or out of range, plus harmless top-level noise. */
const wrongTypesArb = fc
  .record({
    base: validChatRequestArb,
    mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
    noise: fc.dictionary(
      fc.string().filter((name) => name !== 'chatId' && name !== 'messages'),
      fc.jsonValue({ maxDepth: 2 }),
      { maxKeys: 3 },
    ),
  })
  .map(({ base, mutations, noise }) => {
    const body: Record<string, unknown> = structuredClone(base);
    for (const [name, value] of Object.entries(noise)) setOwn(body, name, value);
    for (const mutation of mutations) applyMutation(body, mutation);
    return JSON.stringify(body);
  });

/** Random JSON text, in any shape, that is not a valid chat request. */
const randomJsonArb = fc
  .oneof(
    fc.json(),
    fc.jsonValue({ stringUnit: 'binary' }).map((value) => JSON.stringify(value)),
    fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue()).map((value) => JSON.stringify(value)),
    fc.record({ chatId: fc.jsonValue(), messages: fc.jsonValue() }, { requiredKeys: [] }).map((value) => JSON.stringify(value)),
    fc
      .record({ chatId: chatIdArb, messages: fc.array(fc.record({ role: fc.jsonValue(), content: fc.jsonValue() }, { requiredKeys: [] })) })
      .map((value) => JSON.stringify(value)),
  )
  .filter((text) => !couldBeValidChatRequest(JSON.parse(text)));

/** Any character Node's client accepts in a header value. */
const headerCharArb = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.integer({ min: 0x80, max: 0xff }),
  fc.constant(0x09),
).map((code) => String.fromCharCode(code));
const headerTextArb = (maxLength = 60) => fc.string({ unit: headerCharArb, maxLength });
const tokenArb = (maxLength = 40) => fc.stringMatching(new RegExp(`^[!#$%&'*+.^_\`|~0-9A-Za-z-]{1,${maxLength}}$`));

/** A request body that is never a valid chat request, as text. */
const invalidBodyArb = fc.oneof(randomJsonArb, wrongTypesArb, fc.string({ unit: 'binary' })).filter((text) => {
  try {
    return !couldBeValidChatRequest(JSON.parse(text));
  } catch {
    return true;
  }
});

// Huge and deeply nested values.

type Nesting = 'array' | 'object' | 'mixed';

/** JSON text nested `depth` levels deep (the text is built, not serialized, so depth is no limit). */
function nestedJson(depth: number, nesting: Nesting): string {
  const [open, close, levels] = nesting === 'array' ? ['[', ']', 1] : nesting === 'object' ? ['{"a":', '}', 1] : ['[{"a":', '}]', 2];
  const units = Math.ceil(depth / levels);
  return `${open.repeat(units)}1${close.repeat(units)}`;
}

interface HugeRequest {
  method: 'POST' | 'PATCH';
  body: string;
  chunked: boolean;
  /** The code when the body is within the limit. */
  code: 'invalid_request' | 'invalid_json';
}

const depthArb = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1_000, max: 100_000 }), fc.constant(100_000));

/** Invalid wherever the nested value sits: no placement puts it where a valid request has room for it. */
const deepRequestArb = fc
  .record({
    depth: depthArb,
    nesting: fc.constantFrom<Nesting>('array', 'object', 'mixed'),
    where: fc.constantFrom('top', 'chatId', 'messages', 'message', 'content', 'beside a bad chatId', 'title'),
    truncated: fc.boolean(),
    chunked: fc.boolean(),
  })
  .map(({ depth, nesting, where, truncated, chunked }): HugeRequest => {
    const value = nestedJson(depth, nesting);
    const user = '{"role":"user","content":"hi"}';
    const bodies: Record<typeof where, string> = {
      top: value,
      chatId: `{"chatId":${value},"messages":[${user}]}`,
      messages: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":${value}}`,
      message: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[${value}]}`,
      content: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"user","content":${value}}]}`,
      'beside a bad chatId': `{"deep":${value},"chatId":"not an id","messages":[${user}]}`,
      title: `{"title":${value}}`,
    };
    const body = bodies[where];
    return {
      method: where === 'title' ? 'PATCH' : 'POST',
      body: truncated ? body.slice(0, -1) : body,
      chunked,
      code: truncated ? 'invalid_json' : 'invalid_request',
    };
  });

/** One JSON string character, as written in the body: its byte size varies from 1 to 6. */
const stringUnitArb = fc.constantFrom('x', 'é', '中', '\\n', '\\u0000', '\\"');

const longStringRequestArb = fc
  .record({
    length: fc.integer({ min: MAX_CHARACTERS + 1, max: 600_000 }),
    unit: stringUnitArb,
    where: fc.constantFrom('content', 'chatId', 'role', 'key', 'title', 'top'),
    chunked: fc.boolean(),
  })
  .map(({ length, unit, where, chunked }): HugeRequest => {
    const long = unit.repeat(length);
    const bodies: Record<typeof where, string> = {
      content: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"user","content":"${long}"}]}`,
      chatId: `{"chatId":"${long}","messages":[{"role":"user","content":"hi"}]}`,
      role: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"${long}","content":"hi"}]}`,
      key: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"user","content":"hi","${long}":1}]}`,
      title: `{"title":"${long}"}`,
      top: `"${long}"`,
    };
    const code = where === 'top' ? 'invalid_json' : 'invalid_request';
    return { method: where === 'title' ? 'PATCH' : 'POST', body: bodies[where], chunked, code };
  });

/** Bodies a few KB either side of the limit; what fills them is too long to be valid anyway. */
const nearLimitRequestArb = fc
  .record({ delta: fc.integer({ min: -4_096, max: 4_096 }), where: fc.constantFrom('content', 'title'), chunked: fc.boolean() })
  .map(({ delta, where, chunked }): HugeRequest => {
    const [prefix, suffix] =
      where === 'content' ? [`{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"user","content":"`, '"}]}'] : ['{"title":"', '"}'];
    const body = `${prefix}${'x'.repeat(BODY_LIMIT + delta - prefix.length - suffix.length)}${suffix}`;
    return { method: where === 'title' ? 'PATCH' : 'POST', body, chunked, code: 'invalid_request' };
  });

const manyItemsRequestArb = fc
  .record({
    count: fc.integer({ min: MAX_MESSAGES + 1, max: 40_000 }),
    what: fc.constantFrom('messages', 'keys', 'message keys'),
    chunked: fc.boolean(),
  })
  .map(({ count, what, chunked }): HugeRequest => {
    const item = (index: number) => (what === 'messages' ? '{"role":"user","content":"hi"}' : `"k${index}":${index}`);
    const items = Array.from({ length: count }, (_, index) => item(index)).join(',');
    const bodies: Record<typeof what, string> = {
      messages: `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[${items}]}`,
      keys: `{${items}}`,
      'message keys': `{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"user","content":"hi",${items}}]}`,
    };
    return { method: 'POST', body: bodies[what], chunked, code: 'invalid_request' };
  });

// Path junk.

/** The API's routes as Express matches them: case-insensitive, with or without trailing slashes. */
const ROUTES: Array<{ pattern: RegExp; methods: string[] }> = [
  { pattern: /^\/api\/chat\/*$/i, methods: ['POST'] },
  { pattern: /^\/api\/chat\/([^/]+)\/stream\/*$/i, methods: ['GET', 'HEAD', 'DELETE'] },
  { pattern: /^\/api\/chat\/([^/]+)\/stream-token\/*$/i, methods: ['POST'] },
  { pattern: /^\/api\/chats\/*$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/api\/chats\/([^/]+)\/*$/i, methods: ['GET', 'HEAD', 'PATCH', 'DELETE'] },
  { pattern: /^\/api\/chats\/([^/]+)\/messages\/*$/i, methods: ['GET', 'HEAD'] },
];

/**
 * How the router treats `method` `target`: 'served' if it might succeed (a route, an allowed
 * method and an id-shaped parameter), 'bad-escape' if a route parameter does not percent-decode,
 * 'refused' otherwise. Decides which requests a property may send and expect to be refused.
 */
function routing(method: string, target: string): 'served' | 'bad-escape' | 'refused' {
  const pathname = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').split(/[?#]/)[0]!;
  for (const route of ROUTES) {
    const match = route.pattern.exec(pathname);
    if (!match) continue;
    const parameter = match[1];
    if (parameter !== undefined) {
      let decoded: string;
      try {
        decoded = decodeURIComponent(parameter);
      } catch {
        return 'bad-escape';
      }
      if (!ID_SHAPE.test(decoded)) return 'refused';
    }
    return route.methods.includes(method) ? 'served' : 'refused';
  }
  return 'refused';
}

/** Bytes Node's client sends in a path but Node's HTTP parser refuses there (DEL and anything over 0x7F). */
const REFUSED_BY_HTTP_PARSER = /[\x7f-\xff]/;

const METHODS = ['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS', 'HEAD'];
const methodArb = fc.constantFrom(...METHODS);
const plainSegmentArb = fc.oneof(
  fc.constantFrom('chat', 'chats', 'stream', 'messages', 'CHATS', 'Chat', SEEDED_CHAT_ID, UNKNOWN_CHAT_ID, ''),
  fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/),
);
const BAD_ESCAPES = ['%', '%z', '%zz', '%E0%A4%A', '%C0%AF', '%ED%A0%80', '%FF', '%80', '%C3%28', '%%'];
/** Pieces Node's client sends as they are (it refuses only spaces, controls and characters over U+00FF). */
const junkPieceArb = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.constantFrom(...BAD_ESCAPES, '%00', '%2F', '%2f', '%5C', '%20', '%25', '%23', '%3F', '%2e%2e', '..', '.', '~', '!', '$'),
  },
  { weight: 3, arbitrary: fc.constantFrom('&', "'", '(', ')') },
  { weight: 10, arbitrary: fc.constantFrom('*', '+', ',', ';', '=', ':', '@', '[', ']', '|', '{', '}', '"', '<', '>', '^', '`', '\\') },
  { weight: 5, arbitrary: fc.integer({ min: 0xa0, max: 0xff }).map((code) => String.fromCharCode(code)) },
  { weight: 5, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).map(encodeURIComponent) },
  // Longer than any id or route word.
  { weight: 1, arbitrary: fc.integer({ min: 129, max: 6_000 }).map((length) => 'a'.repeat(length)) },
);
const junkSegmentArb = fc
  .tuple(fc.array(fc.oneof(junkPieceArb, plainSegmentArb), { maxLength: 3 }), junkPieceArb, fc.nat())
  .map(([pieces, junk, at]) => {
    pieces.splice(at % (pieces.length + 1), 0, junk);
    return pieces.join('');
  });
const pathPrefixArb = fc.constantFrom('/api/', '/api/', '/api/', '/API/', '/api//', '//api/', '/api/./', '/api/../api/');
const shortJunkPieceArb = junkPieceArb.filter((piece) => piece.length < 20);
const querySuffixArb = fc.oneof(
  fc.constant(''),
  fc.string({ unit: fc.oneof(shortJunkPieceArb, fc.constantFrom('=', '&', '[]', 'limit', 'cursor')) }).map((query) => `?${query}`),
  fc.string({ unit: fc.oneof(shortJunkPieceArb, fc.constantFrom('#', '?')) }).map((fragment) => `#${fragment}`),
);
/**
 * '/api/...' with at least one junk segment, under the header size limit (a longer URL is a
 * header-size case); may still be served, so properties filter with `routing`.
 */
const junkPathArb = fc
  .tuple(pathPrefixArb, fc.array(fc.oneof(plainSegmentArb, junkSegmentArb), { maxLength: 4 }), junkSegmentArb, fc.nat(), querySuffixArb)
  .map(([prefix, segments, junk, at, suffix]) => {
    segments.splice(at % (segments.length + 1), 0, junk);
    return `${prefix}${segments.join('/')}${suffix}`;
  })
  .filter((path) => path.length < MAX_HEADER_BYTES - 4_096);

/** Bytes only a raw socket can put in a request target. */
const rawPieceArb = fc.oneof(
  junkPieceArb.map((piece) => Buffer.from(piece, 'latin1')),
  fc.constantFrom(' ', '\t', '\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x7f', '#', '?').map((piece) => Buffer.from(piece, 'latin1')),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }).map((text) => Buffer.from(text, 'utf8')),
  fc.constantFrom(0x80, 0xc0, 0xed, 0xfe, 0xff).map((byte) => Buffer.from([byte])),
);
const rawSegmentArb = fc.oneof(
  plainSegmentArb.map((segment) => Buffer.from(segment)),
  fc.array(rawPieceArb, { minLength: 1, maxLength: 4 }).map((pieces) => Buffer.concat(pieces)),
);
const rawTargetArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(pathPrefixArb, fc.array(rawSegmentArb, { minLength: 1, maxLength: 4 }))
      .map(([prefix, segments]) => {
        const joined = segments.flatMap((segment) => [Buffer.from('/'), segment]).slice(1);
        return Buffer.concat([Buffer.from(prefix), ...joined]);
      }),
  },
  // Absolute form, as sent to a proxy.
  { weight: 1, arbitrary: junkPathArb.map((path) => Buffer.from(`http://127.0.0.1${path}`, 'latin1')) },
  // Not origin-form at all.
  {
    weight: 1,
    arbitrary: fc.constantFrom('*', '', 'api/chats', '?', '#', '/api', 'api', '//', '\\api\\chats', 'HTTP/1.1').map((target) => Buffer.from(target)),
  },
);

// Header junk.

/** Headers whose junk would change the framing or the meaning of a request rather than test it. */
const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer',
  'content-type', 'content-encoding', 'authorization', 'last-event-id', 'x-request-id', 'proxy-connection', 'http2-settings',
]);
const headerNameArb = fc
  .oneof(
    tokenArb(),
    fc.constantFrom('accept', 'accept-encoding', 'accept-language', 'user-agent', 'referer', 'origin', 'cookie', 'x-forwarded-for'),
    fc.constantFrom('x-forwarded-proto', 'forwarded', 'if-none-match', 'if-modified-since', 'range', 'cache-control'),
    fc.constantFrom('x-http-method-override', 'x-real-ip', 'dnt'),
    fc.constantFrom('access-control-request-method', 'access-control-request-headers', 'sec-fetch-mode', 'priority'),
  )
  .filter((name) => !RESERVED_HEADERS.has(name.toLowerCase()));
const headerValueArb = fc.oneof(
  headerTextArb(),
  fc.constantFrom('*/*', 'text/event-stream', 'application/json;q=0', 'text/html', '', '\t', 'gzip, br;q=1, *;q=0', 'bytes=0-1', '*'),
  fc.constantFrom('127.0.0.1, ::1', 'for=unknown', 'DELETE', 'GET', 'null', 'https://evil.example', 'text/*;q=', '\xff\xfe'),
);

/** `{key}` stands for the fuzz key, `{key-1}` for it without its last character. */
const VALID_AUTHORIZATIONS = ['Bearer {key}', 'Bearer   {key}', 'bearer {key}', 'BEARER {key}  '];
const JUNK_AUTHORIZATIONS = [
  '', 'Bearer', 'Bearer ', 'Bearer {key}x', 'Bearer {key-1}', 'Bearer {key} extra', 'Bearer {key}{key}', 'Token {key}', '{key}',
  'Bearer\t{key}', 'Bearer,{key}', 'Basic dXNlcjpwYXNz', 'Bearer lss_', 'Bearer null', 'Bearer undefined', 'Digest {key}',
];
const authorizationArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...VALID_AUTHORIZATIONS).map((template) => ({ template, valid: true })) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.constantFrom(...JUNK_AUTHORIZATIONS),
        headerTextArb(),
        fc.stringMatching(/^[A-Za-z0-9_-]{43}$/).map((random) => `Bearer lss_${random}`),
        fc.constant(undefined),
      )
      .map((template) => ({ template, valid: false })),
  },
);

function authorizationHeader(template: string | undefined): Record<string, string> {
  if (template === undefined) return {};
  return { authorization: template.replaceAll('{key-1}', key.slice(0, -1)).replaceAll('{key}', key) };
}

/** Requests that are refused whatever else is in their headers. */
const BASE_REQUESTS = {
  'invalid chat body': { method: 'POST', path: '/api/chat', body: '{}', status: 400, code: 'invalid_request' },
  'chat id that is not an id': { method: 'GET', path: '/api/chats/not.a.chat', status: 400, code: 'invalid_request' },
  'wrong method': { method: 'DELETE', path: '/api/chat', status: 405, code: 'method_not_allowed' },
  'unknown route': { method: 'GET', path: '/api/nothing-here', status: 404, code: 'not_found' },
  'unknown chat': { method: 'GET', path: `/api/chats/${UNKNOWN_CHAT_ID}`, status: 404, code: 'chat_not_found' },
  'resume with a junk Last-Event-ID': { method: 'GET', path: `/api/chat/${SEEDED_CHAT_ID}/stream`, status: 400, code: 'invalid_request' },
} as const;
type BaseName = keyof typeof BASE_REQUESTS;

/** The value after HTTP strips optional whitespace. */
const withoutOws = (value: string) => value.replace(/^[ \t]+|[ \t]+$/g, '');

/** Never an event id (and never empty, which a server could fairly read as "no id"). */
const junkLastEventIdArb = fc
  .oneof(headerTextArb(20), fc.constantFrom('-1', '1.5', '1e3', '0x10', '1234567890123456', '1 2', '+1', '1,2', 'NaN', 'Infinity', '\xb9'))
  .filter((value) => withoutOws(value) !== '' && !/^\d{1,15}$/.test(withoutOws(value)));

const requestIdArb = fc.option(fc.oneof(fc.stringMatching(/^[\w.:-]{1,128}$/), headerTextArb(200)), { nil: undefined });

const headerJunkArb = fc.record({
  base: fc.constantFrom(...(Object.keys(BASE_REQUESTS) as BaseName[])),
  authorization: authorizationArb,
  // An array is sent as repeated header lines.
  headers: fc.array(fc.tuple(headerNameArb, fc.oneof(headerValueArb, fc.array(headerValueArb, { minLength: 2, maxLength: 3 }))), {
    maxLength: 16,
  }),
  long: fc.option(fc.tuple(tokenArb(), fc.integer({ min: 1_000, max: 6_000 }), headerCharArb), { nil: undefined }),
  requestId: requestIdArb,
  lastEventId: junkLastEventIdArb,
});

const visibleCharArb = fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code));
/** A header line that is fine, so that a junk line among them is what gets the request refused. */
const fieldLineArb = fc
  .tuple(tokenArb(20), fc.string({ unit: visibleCharArb, maxLength: 40 }))
  .filter(([name]) => !RESERVED_HEADERS.has(name.toLowerCase()))
  .map(([name, value]) => `${name}: ${value}`);
/** Printable, no colon, not starting with whitespace (which would make it a folded line). */
const colonlessLineArb = fc.stringMatching(/^[!-9;-~][ -9;-~]{0,40}$/);
const badNameCharArb = fc.constantFrom(' ', '(', ')', ',', '/', '@', '[', ']', '{', '}', '"', '\\', '=', '?', '\t');
const controlNameCharArb = fc.constantFrom('\x00', '\x01', '\x7f', '\x80', '\xff');
const badValueCharArb = fc.constantFrom('\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x7f', '\r', '\n');
const badLineArb = fc.oneof(
  fc
    .tuple(tokenArb(10), fc.oneof(badNameCharArb, controlNameCharArb), tokenArb(10))
    .map(([before, bad, after]) => `${before}${bad}${after}: value`),
  fc
    .tuple(tokenArb(10), tokenArb(10), badValueCharArb, tokenArb(10))
    .map(([name, before, bad, after]) => `x-${name}: ${before}${bad}${after}`),
  fc.constantFrom(': no name', ' folded continuation', '\tfolded continuation', 'x-a : space before the colon'),
);

function rawRequest(method: string, target: Buffer | string, lines: string[] = []): Buffer {
  const head = [`Host: 127.0.0.1`, `Authorization: Bearer ${key}`, 'Connection: close', ...lines].join('\r\n');
  return Buffer.concat([Buffer.from(`${method} `), Buffer.from(target as string), Buffer.from(` HTTP/1.1\r\n${head}\r\n\r\n`, 'latin1')]);
}

// Odd content types.

const NOT_JSON_TYPES = [
  'text/plain', 'text/plain; charset=utf-8', 'text/json', 'multipart/form-data; boundary=----fuzz', 'application/x-www-form-urlencoded',
  'application/xml', 'application/octet-stream', 'application/jsonx', 'application/json5', 'application/json-seq', 'application/ld+json',
  'application/vnd.api+json', 'application/problem+json', 'application/*', '*/*', 'json', 'application', 'application/', '/json', '', ';',
  'application/json/x', 'application\\json', 'application json', 'application/jso', 'xapplication/json',
];
/** The media type without parameters, as loosely as any parser might read it. */
const essence = (contentType: string) => contentType.split(';')[0]!.trim().toLowerCase();
const notJsonTypeArb = fc
  .oneof(fc.constantFrom(...NOT_JSON_TYPES), headerTextArb(), fc.constant(undefined))
  .filter((type) => type === undefined || essence(type) !== 'application/json');
const jsonishTypeArb = fc
  .record({
    type: fc.constantFrom('application/json', 'APPLICATION/JSON', 'Application/Json', ' application/json', 'application/json\t'),
    parameters: fc.constantFrom('; charset={}', ';charset={}', '; charset="{}"', '; charset={}; charset=latin1', '; charset={};'),
    more: fc.constantFrom('', '; foo=bar', ';', '; charset', '; charset='),
    charset: fc.oneof(
      fc.constantFrom('utf-8', 'UTF-8', 'utf8', 'latin1', 'iso-8859-1', 'us-ascii', 'utf-16', 'utf-16le', 'utf-16be', 'utf-7', 'utf-32'),
      fc.constantFrom('utf-99', 'x', 'binary', 'base64', 'hex', 'ucs-2'),
      tokenArb(12),
    ),
  })
  .map(({ type, parameters, more, charset }) => `${type}${parameters.replaceAll('{}', charset)}${more}`);
const encodingArb = fc.option(
  fc.oneof(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'GZIP', 'x-gzip', 'compress', 'zstd', 'gzip, deflate', ''), tokenArb(12)),
  { nil: undefined },
);

function encodeBody(body: string, encoding: string | undefined, compress: boolean): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  if (!compress) return bytes;
  if (encoding === 'gzip') return gzipSync(bytes);
  if (encoding === 'deflate') return deflateSync(bytes);
  if (encoding === 'br') return brotliCompressSync(bytes);
  return bytes;
}

// Invalid UTF-8.

const INVALID_UTF8 = {
  'lone continuation byte': [0x80],
  'two continuation bytes': [0xbf, 0x80],
  'overlong /': [0xc0, 0xaf],
  'overlong NUL': [0xc0, 0x80],
  'overlong 3-byte': [0xe0, 0x80, 0xaf],
  'overlong 4-byte': [0xf0, 0x80, 0x80, 0xaf],
  'UTF-16 surrogate': [0xed, 0xa0, 0x80],
  'CESU-8 surrogate pair': [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80],
  'truncated 2-byte': [0xc3],
  'truncated 3-byte': [0xe2, 0x82],
  'truncated 4-byte': [0xf0, 0x9f, 0x98],
  'beyond U+10FFFF': [0xf4, 0x90, 0x80, 0x80],
  '5-byte form': [0xf8, 0x88, 0x80, 0x80, 0x80],
  '0xFE': [0xfe],
  '0xFF': [0xff],
};

/** A body whose only fault, in 'content' and 'key', is bytes that are not UTF-8. */
const invalidUtf8Arb = fc
  .record({
    sequence: fc.constantFrom(...(Object.keys(INVALID_UTF8) as Array<keyof typeof INVALID_UTF8>)),
    where: fc.constantFrom('content', 'key', 'role', 'chatId'),
    before: fc.string({ maxLength: 10 }),
    after: fc.string({ maxLength: 10 }),
    contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=UTF-8'),
  })
  .map(({ sequence, where, before, after, contentType }) => {
    const bad = Buffer.from(INVALID_UTF8[sequence]);
    // A JSON string with the bad bytes between `before` and `after`.
    const text = (rest: string) => [
      Buffer.from(JSON.stringify(before).slice(0, -1)),
      bad,
      Buffer.from(JSON.stringify(after).slice(1)),
      Buffer.from(rest),
    ];
    const user = '{"role":"user","content":"hi"}';
    const parts: Record<typeof where, Buffer[]> = {
      content: [Buffer.from(`{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"role":"user","content":`), ...text('}]}')],
      key: [Buffer.from('{'), ...text(`:1,"chatId":"${UNKNOWN_CHAT_ID}","messages":[${user}]}`)],
      role: [Buffer.from(`{"chatId":"${UNKNOWN_CHAT_ID}","messages":[{"content":"hi","role":`), ...text('}]}')],
      chatId: [Buffer.from('{"chatId":'), ...text(`,"messages":[${user}]}`)],
    };
    return { body: Buffer.concat(parts[where]), contentType, label: `${sequence} in ${where}` };
  });

// ---------------------------------------------------------------------------------------------

describe('hostile input against the running service', () => {
  test('random JSON values POSTed to /api/chat get 400 JSON', async () => {
    await fc.assert(
      fc.asyncProperty(randomJsonArb, async (text) => {
        const answer = await postChat(text);
        // body-parser's strict mode refuses anything but an object or array as invalid JSON.
        expectRefusal(answer, { status: 400, code: /^[[{]/.test(text) ? 'invalid_request' : 'invalid_json' });
        await expectNothingChanged();
      }),
      { seed: 20_261_001, numRuns: 400 },
    );
    await expectStillUp();
  }, 60_000);

  test('chat requests with wrong types or out-of-range values get 400 invalid_request', async () => {
    await fc.assert(
      fc.asyncProperty(wrongTypesArb, async (text) => {
        if (couldBeValidChatRequest(JSON.parse(text))) throw new Error(`the generator made a valid request: ${text.slice(0, 300)}`);
        const answer = await postChat(text);
        expectRefusal(answer, { status: 400, code: 'invalid_request' });
        const { details } = JSON.parse(answer.body.toString('utf8')).error;
        expect(Array.isArray(details) && details.length > 0).toBe(true);
        await expectNothingChanged();
      }),
      { seed: 20_261_002, numRuns: 400 },
    );
    await expectStillUp();
  }, 60_000);

  test('huge and deeply nested values get 400, or 413 over the body limit', async () => {
    const hugeRequestArb = fc.oneof(deepRequestArb, longStringRequestArb, nearLimitRequestArb, manyItemsRequestArb);
    await fc.assert(
      fc.asyncProperty(hugeRequestArb, async ({ method, body, chunked, code }) => {
        const path = method === 'PATCH' ? `/api/chats/${SEEDED_CHAT_ID}` : '/api/chat';
        // Chunked: no Content-Length, so the limit must be enforced while reading.
        const headers = { ...bearer(), ...JSON_TYPE, ...(chunked ? { 'transfer-encoding': 'chunked' } : {}) };
        const answer = await sendHttp(port, { method, path, headers, body });
        const size = Buffer.byteLength(body);
        expectRefusal(answer, size > BODY_LIMIT ? { status: 413, code: 'payload_too_large' } : { status: 400, code });
        await expectNothingChanged();
      }),
      { seed: 20_261_003, numRuns: 150 },
    );
    await expectStillUp();
  }, 90_000);

  test('a body that is not JSON, or not declared as JSON, gets 415 or 400', async () => {
    const notDeclaredArb = fc.record({
      contentType: notJsonTypeArb,
      // Valid chat requests too: the declared type alone must get them refused.
      body: fc.oneof(validChatRequestArb.map((request) => JSON.stringify(request)), invalidBodyArb, fc.constant('')),
    });
    await fc.assert(
      fc.asyncProperty(notDeclaredArb, async ({ contentType, body }) => {
        const answer = await postChat(body, contentType === undefined ? {} : { 'content-type': contentType });
        expectRefusal(answer, { status: 415, code: 'unsupported_media_type' });
        await expectNothingChanged();
      }),
      { seed: 20_261_005, numRuns: 200 },
    );
    const oddJsonArb = fc.record({ contentType: jsonishTypeArb, body: invalidBodyArb, encoding: encodingArb, compress: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(oddJsonArb, async ({ contentType, body, encoding, compress }) => {
        const headers = { 'content-type': contentType, ...(encoding === undefined ? {} : { 'content-encoding': encoding }) };
        const answer = await postChat(encodeBody(body, encoding, compress), headers);
        expectRefusal(answer, { status: [400, 415], code: ['invalid_json', 'invalid_request', 'unsupported_media_type'] });
        await expectNothingChanged();
      }),
      { seed: 20_261_006, numRuns: 250 },
    );
    await expectStillUp();
  }, 60_000);

  test('junk paths under /api, with any method, get 4xx JSON', async () => {
    const arb = fc
      .record({ method: methodArb, path: junkPathArb })
      .filter(({ method, path }) => routing(method, path) === 'refused')
      // HEAD with bytes the HTTP parser refuses has a property of its own, below.
      .filter(({ method, path }) => method !== 'HEAD' || !REFUSED_BY_HTTP_PARSER.test(path));
    await fc.assert(
      fc.asyncProperty(arb, async ({ method, path }) => {
        const answer = await sendHttp(port, { method, path, headers: bearer() });
        expectRefusal(answer, { method });
        await expectNothingChanged();
      }),
      { seed: 20_261_007, numRuns: 400 },
    );
    await expectStillUp();
  }, 60_000);

  test('request targets only a raw socket can send get 4xx JSON', async () => {
    const arb = fc
      .record({ method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS'), target: rawTargetArb })
      .filter(({ method, target }) => routing(method, target.toString('latin1')) === 'refused');
    await fc.assert(
      fc.asyncProperty(arb, async ({ method, target }) => {
        const answer = await sendRaw(port, rawRequest(method, target));
        expectRefusal(answer, { method });
        await expectNothingChanged();
      }),
      { seed: 20_261_008, numRuns: 150 },
    );
    await expectStillUp();
  }, 60_000);

  test('junk headers, Authorization and Last-Event-ID get the expected 4xx JSON, with an X-Request-Id', async () => {
    await fc.assert(
      fc.asyncProperty(headerJunkArb, async ({ base: name, authorization, headers: junk, long, requestId, lastEventId }) => {
        const base = BASE_REQUESTS[name];
        const headers: OutgoingHttpHeaders = {};
        for (const [header, value] of junk) headers[header] = value;
        if (long) headers[`x-long-${long[0]}`] = long[2].repeat(long[1]);
        if ('body' in base) Object.assign(headers, JSON_TYPE);
        if (name === 'resume with a junk Last-Event-ID') headers['last-event-id'] = lastEventId;
        if (requestId !== undefined) headers['x-request-id'] = requestId;
        Object.assign(headers, authorizationHeader(authorization.template));

        const body = 'body' in base ? base.body : undefined;
        const answer = await sendHttp(port, { method: base.method, path: base.path, headers, body });
        if (authorization.valid) {
          expectRefusal(answer, { status: base.status, code: base.code });
        } else {
          expectRefusal(answer, { status: 401, code: 'unauthorized' });
          expect(answer.headers['www-authenticate']).toBe('Bearer');
        }
        const plainId = requestId !== undefined && /^[\w.:-]{1,128}$/.test(withoutOws(requestId));
        if (plainId) expect(answer.headers['x-request-id']).toBe(withoutOws(requestId!));
        else expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        await expectNothingChanged();
      }),
      { seed: 20_261_009, numRuns: 300 },
    );
    await expectStillUp();
  }, 60_000);

  test('header lines without a colon get 400 JSON from the HTTP layer', async () => {
    const arb = fc
      .tuple(fc.array(fieldLineArb, { maxLength: 4 }), colonlessLineArb, fc.nat())
      .map(([lines, colonless, at]) => {
        lines.splice(at % (lines.length + 1), 0, colonless);
        return lines;
      });
    await fc.assert(
      fc.asyncProperty(arb, async (lines) => {
        // Express would answer 404 for this path: a 400 comes from the HTTP layer.
        const answer = await sendRaw(port, rawRequest('GET', '/api/nothing-here', lines));
        expectRefusal(answer, { status: 400, code: 'invalid_request' });
        await expectNothingChanged();
      }),
      { seed: 20_261_010, numRuns: 100 },
    );
    await expectStillUp();
  }, 60_000);

  test('invalid characters in header names and values get 400 JSON (or, if tolerated, the 404 of the path)', async () => {
    const arb = fc
      .tuple(fc.array(fieldLineArb, { maxLength: 4 }), badLineArb, fc.nat())
      .map(([lines, bad, at]) => {
        lines.splice(at % (lines.length + 1), 0, bad);
        return lines;
      });
    await fc.assert(
      fc.asyncProperty(arb, async (lines) => {
        const answer = await sendRaw(port, rawRequest('GET', '/api/nothing-here', lines));
        expectRefusal(answer, { status: [400, 404], code: ['invalid_request', 'not_found'] });
        await expectNothingChanged();
      }),
      { seed: 20_261_011, numRuns: 150 },
    );
    await expectStillUp();
  }, 60_000);

  test('headers over 16 KB get 431 JSON headers_too_large', async () => {
    const arb = fc.record({
      lines: fc.array(fieldLineArb, { maxLength: 20 }),
      extra: fc.integer({ min: 0, max: 40_000 }),
      padding: fc.constantFrom('one header', 'many headers', 'url'),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ lines, extra, padding }) => {
        // Node counts the URL and every header name and value; the junk alone reaches the limit.
        const counted = lines.reduce((sum, line) => sum + line.length - 2, 0);
        const missing = Math.max(1, MAX_HEADER_BYTES + extra - counted);
        let target = '/api/nothing-here';
        const padded = [...lines];
        if (padding === 'url') target += `?q=${'q'.repeat(missing)}`;
        else if (padding === 'one header') padded.push(`x-pad: ${'p'.repeat(missing)}`);
        else for (let left = missing, index = 0; left > 0; left -= 1_000, index++) padded.push(`x-pad-${index}: ${'p'.repeat(1_000)}`);
        const answer = await sendRaw(port, rawRequest('GET', target, padded));
        expectRefusal(answer, { status: 431, code: 'headers_too_large' });
        await expectNothingChanged();
      }),
      { seed: 20_261_012, numRuns: 60 },
    );
    await expectStillUp();
  }, 60_000);
});

/**
 * One plain example of each answer Node's HTTP layer makes before Express sees the request. The
 * properties above check the same, but a failing property shrinks its input for many minutes
 * before it reports; these fail at once.
 */
describe("the HTTP layer's own refusals", () => {
  const REQUEST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  test.each([
    ['a header line without a colon', 400, 'invalid_request', 'The request is not valid HTTP.',
      () => sendRaw(port, rawRequest('GET', '/api/nothing-here', ['no colon here']))],
    ['headers over 16 KB', 431, 'headers_too_large', 'The request headers are too large.',
      () => sendRaw(port, rawRequest('GET', '/api/nothing-here', [`x-pad: ${'p'.repeat(MAX_HEADER_BYTES)}`]))],
    ['an Expect header other than 100-continue', 417, 'invalid_request', 'Only "Expect: 100-continue" is supported.',
      () => sendHttp(port, { method: 'GET', path: '/api/nothing-here', headers: { ...bearer(), expect: 'junk' } })],
  ] as const)('%s: %d %s JSON, with an X-Request-Id of its own', async (_case, status, code, message, send) => {
    const [first, second] = [await send(), await send()];
    for (const answer of [first, second]) {
      expect(answer.status).toBe(status);
      expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(answer.body.toString('utf8'))).toEqual({ error: { code, message } });
      expect(answer.headers['x-request-id']).toMatch(REQUEST_ID);
    }
    expect(first.headers['x-request-id']).not.toBe(second.headers['x-request-id']);
    await expectNothingChanged();
  });

  test('the 417, whose request Node did parse, keeps the caller\'s X-Request-Id like the app does', async () => {
    const headers = { ...bearer(), expect: 'junk', 'x-request-id': 'trace-417' };
    const answer = await sendHttp(port, { method: 'GET', path: '/api/nothing-here', headers });
    expect(answer.status).toBe(417);
    expect(answer.headers['x-request-id']).toBe('trace-417');
  });
});

/** Bugs the properties above found, each kept as a regression property. */
describe('found by fuzzing', () => {
  // Was: a route parameter that does not percent-decode (GET /api/chats/%) answers 500
  // internal_error. The router's URIError carries status 400 but no `expose`, so `classify` in
  // src/http/error-handler.ts treats it as unknown. Expected: 400 invalid_request.
  test('a route parameter with malformed percent-encoding gets 400 JSON, not 500', async () => {
    const arb = fc
      .record({
        template: fc.constantFrom('/api/chats/{}', '/api/chats/{}/messages', '/api/chat/{}/stream'),
        before: fc.stringMatching(/^[A-Za-z0-9-]{0,8}$/),
        bad: fc.constantFrom(...BAD_ESCAPES),
        after: fc.stringMatching(/^[A-Za-z0-9-]{0,8}$/),
        method: methodArb,
      })
      .map(({ template, before, bad, after, method }) => ({ method, path: template.replace('{}', `${before}${bad}${after}`) }))
      .filter(({ method, path }) => routing(method, path) === 'bad-escape');
    await fc.assert(
      fc.asyncProperty(arb, async ({ method, path }) => {
        const answer = await sendHttp(port, { method, path, headers: bearer() });
        expectRefusal(answer, { method });
        await expectNothingChanged();
      }),
      { seed: 20_261_013, numRuns: 100 },
    );
  }, 60_000);

  // Was: an `Expect` header other than 100-continue gets Node's bare 417 (no body, no
  // content-type): src/http/create-server.ts has no 'checkExpectation' handler. Expected: a 4xx
  // JSON error like every other refusal.
  test('an Expect header other than 100-continue gets 4xx JSON', async () => {
    const arb = fc
      .oneof(tokenArb(20), fc.constantFrom('100-continue-x', '200-ok', 'junk', '100-Continue, x'))
      .filter((expectation) => expectation.toLowerCase() !== '100-continue');
    await fc.assert(
      fc.asyncProperty(arb, async (expectation) => {
        const answer = await sendHttp(port, { method: 'GET', path: '/api/nothing-here', headers: { ...bearer(), expect: expectation } });
        expectRefusal(answer);
        await expectNothingChanged();
      }),
      { seed: 20_261_014, numRuns: 50 },
    );
  }, 60_000);

  // Was: a request the HTTP parser refuses gets its 400 JSON body even when it is a HEAD request,
  // whose answer must not have one (RFC 9110, 9.3.2): Node's own client then fails with "Parse
  // Error: Data after `Connection: close`" instead of seeing the 400. The 'clientError' handler in
  // src/http/create-server.ts writes the body whatever the method. Expected: 400 without a body.
  test('a HEAD request the HTTP parser refuses gets a 4xx answer without a body', async () => {
    const segmentArb = fc.stringMatching(/^[A-Za-z0-9-]{0,12}$/);
    const refusedByteArb = fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x7f));
    const arb = fc
      .tuple(fc.constantFrom('/api/', '/api/chats/', '/api/chat/'), segmentArb, refusedByteArb, segmentArb)
      .map(([prefix, before, code, after]) => `${prefix}${before}${String.fromCharCode(code)}${after}`);
    await fc.assert(
      fc.asyncProperty(arb, async (path) => {
        const answer = await sendHttp(port, { method: 'HEAD', path, headers: bearer() });
        expectRefusal(answer, { method: 'HEAD' });
        await expectNothingChanged();
      }),
      { seed: 20_261_015, numRuns: 50 },
    );
  }, 60_000);
});

/**
 * A body that is not UTF-8 used to kill the process, so this property runs against its own
 * service process (`src/main.ts`), not the in-process service the rest of the file shares.
 */
describe('regression: invalid UTF-8', () => {
  let directory: string;
  let ownUpstream: FakeUpstream;
  let server: ServerProcess;
  let ownPort: number;
  let ownKey: string;
  let databasePath: string;

  beforeAll(async () => {
    directory = mkdtempSync(join(tmpdir(), 'hostile-input-'));
    ownUpstream = await startFakeUpstream();
    databasePath = join(directory, 'chat.db');
    const configPath = join(directory, 'config.toml');
    writeFileSync(configPath, '[limits]\nrequests_per_minute = 1000000\n');
    server = startServer(
      directory,
      serviceEnvironment({
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: `file:${databasePath}`,
        CONFIG_PATH: configPath,
        AZURE_OPENAI_API_KEY: ownUpstream.apiKey,
        AZURE_OPENAI_ENDPOINT: ownUpstream.url,
        AZURE_OPENAI_DEPLOYMENT_NAME: ownUpstream.deployment,
      }),
    );
    ownPort = await listeningPort(server);
    // The first start creates a key and prints it once, on stderr.
    ownKey = (await server.waitForStderr(FIRST_KEY_LINE))[1]!;
  }, 30_000);

  afterAll(async () => {
    await stopServers();
    await ownUpstream.close();
    rmSync(directory, { recursive: true, force: true });
  });

  function rowCounts() {
    const database = new Database(databasePath, { readonly: true });
    try {
      return database.prepare('SELECT (SELECT COUNT(*) FROM Chat) AS chats, (SELECT COUNT(*) FROM Message) AS messages').get();
    } finally {
      database.close();
    }
  }

  // Was: a JSON body that is not UTF-8 throws an uncaught TypeError that ends the process.
  // `requireUtf8` in src/http/create-app.ts throws an AppError from body-parser's `verify`;
  // body-parser hands it to http-errors, which assigns `error.status`, a getter-only property of
  // AppError (src/errors/app-error.ts). Expected: 400 invalid_json, and the process stays up.
  test('a JSON body with invalid UTF-8 gets 400 invalid_json and the process stays up', async () => {
    const before = rowCounts();
    await fc.assert(
      fc.asyncProperty(invalidUtf8Arb, async ({ body, contentType }) => {
        const headers = { authorization: `Bearer ${ownKey}`, 'content-type': contentType };
        const answer = await sendHttp(ownPort, { method: 'POST', path: '/api/chat', headers, body }).catch((error: Error) => {
          const exit = server.child.exitCode ?? server.child.signalCode;
          if (exit === null) throw error;
          const stderr = server.stderr().split('\n').slice(0, 5).join(' | ');
          throw new Error(`no answer (${error.message}): the service process exited (${exit}): ${stderr}`);
        });
        expectRefusal(answer, { status: 400, code: 'invalid_json' });
        expect((await sendHttp(ownPort, { method: 'GET', path: '/healthz' })).status).toBe(200);
        expect(rowCounts()).toEqual(before);
        expect(ownUpstream.requests).toHaveLength(0);
      }),
      // Once the process is gone every run fails the same way: shrinking would only hide that.
      { seed: 20_261_004, numRuns: 150, endOnFailure: true },
    );
  }, 30_000);
});

/** A chat request in UTF-16, UTF-32 or UTF-7, encoded as declared. Each is ASCII (so UTF-7 is the same bytes) and has no BOM. */
const CHARSET_ENCODERS: Record<string, (text: string) => Buffer> = {
  'utf-16le': (text) => Buffer.from(text, 'utf16le'),
  'utf-16be': (text) => Buffer.from(text, 'utf16le').swap16(),
  'utf-16': (text) => Buffer.from(text, 'utf16le'),
  'utf-32le': (text) => Buffer.concat([...text].map((character) => Buffer.from([character.charCodeAt(0), 0, 0, 0]))),
  'utf-7': (text) => Buffer.from(text, 'ascii'),
};

/** A valid chat turn in another charset used to be accepted, so this property has a service of its own. */
describe('regression: JSON in a charset other than UTF-8', () => {
  let ownUpstream: FakeUpstream;
  let ownService: TestService;
  let ownKey: string;

  beforeAll(async () => {
    ownUpstream = await startFakeUpstream();
    ownService = await startTestService({ upstream: ownUpstream, auth: true, configToml: '[limits]\nrequests_per_minute = 1000000\n' });
    ownKey = (await ownService.keys!.create('fuzz')).key;
  });

  afterAll(async () => {
    await ownService.close();
    await ownUpstream.close();
  });

  // Was: `application/json; charset=utf-16le` (or utf-16be, utf-16, utf-32le, utf-7) is decoded and
  // a valid turn in it is streamed, stored and sent upstream. express.json in
  // src/http/create-app.ts accepts every `utf-*` charset, and `requireUtf8` checks the raw bytes,
  // which for ASCII text in UTF-16/32 are valid UTF-8 (NUL bytes). The README promises 415 for a
  // body that is not UTF-8 JSON. Expected: 415 unsupported_media_type, nothing stored.
  test('a valid chat request encoded in another charset gets 415 and is not stored', async () => {
    const arb = fc.record({
      charset: fc.constantFrom(...Object.keys(CHARSET_ENCODERS)),
      chatId: fc.uuid(),
      content: fc.stringMatching(/^[A-Za-z0-9 .,!?]{1,30}$/),
    });
    const rows = () => ownService.query('SELECT (SELECT COUNT(*) FROM Chat) AS chats, (SELECT COUNT(*) FROM Message) AS messages');
    const before = await rows();
    await fc.assert(
      fc.asyncProperty(arb, async ({ charset, chatId, content }) => {
        const body = CHARSET_ENCODERS[charset]!(JSON.stringify({ chatId, messages: [{ role: 'user', content }] }));
        const headers = { authorization: `Bearer ${ownKey}`, 'content-type': `application/json; charset=${charset}` };
        const answer = await sendHttp(Number(new URL(ownService.url).port), { method: 'POST', path: '/api/chat', headers, body });
        expectRefusal(answer, { status: 415, code: 'unsupported_media_type' });
        expect(await rows()).toEqual(before);
        expect(ownUpstream.requests).toHaveLength(0);
      }),
      { seed: 20_261_016, numRuns: 50 },
    );
  }, 30_000);
});

test('afterwards the process is up, the model was never called and the database is as seeded', async () => {
  await expectStillUp();
});
