/**
 * GET /openapi.json against the app it describes: every route the app registers is documented
 * and every documented operation is registered (auth, JWTs and metrics on, so that every route
 * exists; and off), the served document is valid OpenAPI 3.1, and what it says of requests is
 * what the validators do.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import request from 'supertest';
import { PROJECT_ROOT } from '../../src/build-service';
import { STATUS_BY_CODE } from '../../src/errors/app-error';
import { postChat } from '../support/chat-client';
import { registeredRoutes } from '../support/registered-routes';
import { startTestService, type TestService } from '../support/test-service';

/** The served document, read as plain JSON. */
type Document = any;

const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];

/**
 * Middleware mounted on a path of its own. Each may answer requests that no route lists, so each
 * is named here, with why it is not in the document; a new one fails the test until it is.
 */
const MOUNTED_MIDDLEWARE = [
  // The key check in front of /api and /v1: it answers only errors (401), documented per operation.
  { path: '/api', name: '<anonymous>' },
  { path: '/v1', name: '<anonymous>' },
  // The requests-per-minute limit (with keys only): it answers only 429, documented per operation.
  { path: '/api', name: '<anonymous>', withKeys: true },
  { path: '/v1', name: '<anonymous>', withKeys: true },
  // The chat page's hashed scripts and styles (express.static): files, not API.
  { path: '/assets', name: 'serveStatic' },
  // Swagger UI's files and the /docs page's initializer script: files, not API.
  { path: '/docs/assets', name: '<anonymous>' },
];

let withEverything: TestService;
let withLess: TestService;
let apiKey: string;
let document: Document;

beforeAll(async () => {
  [withEverything, withLess] = await Promise.all([
    startTestService({
      auth: true,
      configToml: '[metrics]\nenabled = true\n[simulator]\ndelay_ms = 0\n',
      // JWTs accepted: the key set is fetched at the first JWT only, so no server is needed here.
      environment: { JWT_JWKS_URL: 'http://127.0.0.1:9/jwks.json', JWT_ISSUER: 'https://issuer.example', JWT_AUDIENCE: 'api' },
    }),
    startTestService({ auth: false, configToml: '[metrics]\nenabled = false\n' }),
  ]);
  apiKey = (await withEverything.keys!.create('openapi')).key;
  document = (await request(withEverything.url).get('/openapi.json').expect(200).expect('content-type', /application\/json/)).body;
});

afterAll(async () => {
  await Promise.all([withEverything?.close(), withLess?.close()]);
});

function documentedOperations(served: Document): string[] {
  return Object.entries(served.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((method) => OPERATION_METHODS.includes(method))
      .map((method) => `${method} ${path}`),
  );
}

describe('the document and the registered routes', () => {
  test.each([
    ['auth, JWTs and metrics on', () => withEverything],
    ['auth and metrics off', () => withLess],
  ])('match both ways (%s)', async (_name, service) => {
    const served = (await request(service().url).get('/openapi.json').expect(200)).body;
    const { routes, middleware } = registeredRoutes(service().app);
    const operations = new Set(documentedOperations(served));
    const registered = new Set(routes.filter((route) => route.method !== 'all').map((route) => `${route.method} ${route.path}`));

    expect([...registered].filter((route) => !operations.has(route))).toEqual([]);
    expect([...operations].filter((operation) => !registered.has(operation))).toEqual([]);
    // `router.all` answers 405 on the documented paths: its path must be one of them.
    expect(routes.filter((route) => route.method === 'all' && !served.paths[route.path])).toEqual([]);
    const expected = MOUNTED_MIDDLEWARE.filter((entry) => !entry.withKeys || service().keys !== undefined).map(({ path, name }) => `${path} ${name}`);
    expect(middleware.map(({ path, name }) => `${path} ${name}`).sort()).toEqual(expected.sort());
  });

  test('the walk finds the routes it should: mounted routers, parameters, the conditional ones', () => {
    const { routes } = registeredRoutes(withEverything.app);
    const found = new Set(routes.map((route) => `${route.method} ${route.path}`));
    expect(found.size).toBeGreaterThan(20);
    for (const known of ['post /api/chat', 'get /api/chat/{chatId}/stream', 'patch /api/chats/{chatId}', 'get /v1/models/{model}', 'post /v1/chat/completions', 'get /metrics', 'get /healthz', 'get /', 'get /openapi.json', 'get /docs', 'all /api/chats']) {
      expect(found).toContain(known);
    }
    expect(registeredRoutes(withLess.app).routes.map((route) => route.path)).not.toContain('/metrics');
    expect(documentedOperations(document)).toContain('get /metrics');
  });
});

describe('the served document', () => {
  test('is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator, fed GET /openapi.json)', async () => {
    // The validator is published as ES modules only, which Jest's CommonJS runtime cannot load: it runs in a Node of its own.
    const script = `
      import { Validator } from '@seriousme/openapi-schema-validator';
      const served = await (await fetch(process.argv[1])).json();
      const validator = new Validator();
      const result = await validator.validate(served);
      process.stdout.write(JSON.stringify({ ...result, version: validator.version }));`;
    for (const service of [withEverything, withLess]) {
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, `${service.url}/openapi.json`], { cwd: PROJECT_ROOT });
      const result = JSON.parse(stdout) as { valid: boolean; errors?: unknown; version: string };
      if (!result.valid) process.stderr.write(`OpenAPI validation errors:\n${JSON.stringify(result.errors, null, 2)}\n`);
      expect(result).toEqual({ valid: true, version: '3.1' });
    }
  });

  test('is public: /openapi.json and /docs need no key; /docs has its own policy', async () => {
    await request(withEverything.url).get('/openapi.json').expect(200);
    const page = await request(withEverything.url).get('/docs').expect(200).expect('content-type', /text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).not.toContain("'unsafe-eval'");
    await request(withEverything.url).get('/docs/assets/swagger-ui-bundle.js').expect(200).expect('content-type', /javascript/);
    // Only the files the page needs: not swagger-ui-dist's demo page, which loads the Petstore from another host.
    await request(withEverything.url).get('/docs/assets/index.html').expect(404);
    await request(withEverything.url).get('/docs/assets/swagger-initializer.js').expect(404);
  });

  test('names every error code, and each operation\'s errors at the status of their code', () => {
    expect(document.components.schemas.Error.properties.error.properties.code.enum).toEqual(Object.keys(STATUS_BY_CODE));
    for (const [path, item] of Object.entries<any>(document.paths)) {
      for (const [method, operation] of Object.entries<any>(item)) {
        for (const [status, response] of Object.entries<any>(operation.responses)) {
          const label = `${method} ${path} ${status}`;
          expect([label, response.headers['X-Request-Id']]).toEqual([label, { $ref: '#/components/headers/X-Request-Id' }]);
          if (status === '429' || status === '503') expect([label, response.headers['Retry-After']]).toEqual([label, { $ref: '#/components/headers/Retry-After' }]);
          const codes: string[] | undefined = response.content?.['application/json']?.schema?.properties?.error?.properties?.code?.enum;
          for (const code of codes ?? []) expect([label, code, STATUS_BY_CODE[code as keyof typeof STATUS_BY_CODE]]).toEqual([label, code, Number(status)]);
        }
      }
    }
    expect(document.paths['/v1/models'].get.responses['401'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/OpenAiError' });
    expect(document.paths['/api/chats'].get.responses['401'].content['application/json'].schema.properties.error.properties.code.enum).toEqual(['unauthorized']);
  });

  test('security schemes: API key, JWT, the stream token on the resume route only, the metrics token', () => {
    expect(Object.keys(document.components.securitySchemes).sort()).toEqual(['apiKey', 'jwt', 'metricsToken', 'streamToken']);
    expect(document.components.securitySchemes.jwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const usingStreamToken = Object.entries<any>(document.paths).flatMap(([path, item]) =>
      Object.entries<any>(item)
        .filter(([, operation]) => operation.security?.some((requirement: object) => 'streamToken' in requirement))
        .map(([method]) => `${method} ${path}`),
    );
    expect(usingStreamToken).toEqual(['get /api/chat/{chatId}/stream']);
    expect(document.paths['/healthz'].get.security).toEqual([]);
  });
});

describe('what the document says of requests is what the validators do', () => {
  const chatBody = () => document.paths['/api/chat'].post.requestBody.content['application/json'].schema.anyOf[0];
  const auth = () => ({ authorization: `Bearer ${apiKey}` });

  test('POST /api/chat: each field the document requires is required by the API', async () => {
    expect(chatBody().required).toEqual(['chatId', 'messages']);
    for (const field of chatBody().required as string[]) {
      const body: Record<string, unknown> = { chatId: 'required-fields', messages: [{ role: 'user', content: 'Hi' }] };
      delete body[field];
      const answer = await postChat(withEverything.url, body, auth());
      expect([field, answer.status, answer.json().error.code]).toEqual([field, 400, 'invalid_request']);
      expect(answer.json().error.details.map((detail: { path: string }) => detail.path)).toContain(field);
    }
  });

  test.each([
    ['a space', 'has space'],
    ['129 characters', 'x'.repeat(129)],
    ['a dot', 'a.b'],
  ])('a chat id with %s fails the documented pattern, and the API answers 400', async (_name, chatId) => {
    const pattern = new RegExp(chatBody().properties.chatId.pattern as string);
    expect(pattern.test(chatId)).toBe(false);
    const answer = await postChat(withEverything.url, { chatId, messages: [{ role: 'user', content: 'Hi' }] }, auth());
    expect([answer.status, answer.json().error.details]).toEqual([400, [{ path: 'chatId', message: expect.any(String) }]]);
    const pathPattern = new RegExp(document.paths['/api/chats/{chatId}'].get.parameters[0].schema.pattern as string);
    expect(pathPattern.test(chatId)).toBe(false);
    await request(withEverything.url).get(`/api/chats/${encodeURIComponent(chatId)}`).set(auth()).expect(400);
  });

  test('a chat id of 128 characters fits the pattern, and the API takes it', async () => {
    const chatId = 'y'.repeat(128);
    expect(new RegExp(chatBody().properties.chatId.pattern as string).test(chatId)).toBe(true);
    const answer = await postChat(withEverything.url, { chatId, messages: [{ role: 'user', content: 'Hi' }] }, auth());
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('data: [DONE]');
  });

  test('the documented message limit is the configured one, and one more message is refused', async () => {
    const { maxItems } = chatBody().properties.messages;
    expect(maxItems).toBe(withEverything.config.limits.max_messages_per_request);
    const messages = Array.from({ length: maxItems + 1 }, () => ({ role: 'user', content: 'Hi' }));
    const answer = await postChat(withEverything.url, { chatId: 'too-many', messages }, auth());
    expect([answer.status, answer.json().error.code]).toEqual([400, 'invalid_request']);
  });

  test('POST /v1/chat/completions: a field the document leaves out is refused by name', async () => {
    const schema = document.paths['/v1/chat/completions'].post.requestBody.content['application/json'].schema;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.frobnicate).toBeUndefined();
    const answer = await request(withEverything.url)
      .post('/v1/chat/completions')
      .set(auth())
      .send({ messages: [{ role: 'user', content: 'Hi' }], frobnicate: true })
      .expect(400);
    expect(answer.body.error).toMatchObject({ param: 'frobnicate', code: 'unsupported_parameter' });
  });
});
