/**
 * End users from an identity provider: their JWTs, verified against a JWKS that a local HTTP
 * server publishes with keys made here, as Entra ID, Auth0 or Keycloak publish theirs.
 */
import { createHmac, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CryptoKey, JWK } from 'jose' with { 'resolution-mode': 'import' };
import { jwtOwnerId } from '../../src/auth/jwt-verifier';
import { call, eventually, openSse, type SseConnection, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

const ISSUER = 'https://login.example.com/tenant-1/v2.0';
/** jose is ES modules only: a CommonJS test reaches it through import() (see jest.config.ts). */
let jose: typeof import('jose', { with: { 'resolution-mode': 'import' } });
const AUDIENCE = 'api://llm-streaming-service';

interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

/** A JWKS endpoint: publishes `keys`, counts its fetches. */
interface KeySetServer {
  url: string;
  keys: JWK[];
  fetches: number;
  close(): Promise<void>;
}

let upstream: FakeUpstream;
let jwks: KeySetServer;
let service: TestService;
let rsa: SigningKey;
let ec: SigningKey;
let apiKey: string;

async function signingKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' }, publicPem: await jose.exportSPKI(publicKey) };
}

async function startKeySetServer(keys: JWK[]): Promise<KeySetServer> {
  const state = { keys, fetches: 0 };
  const server = http.createServer((_request, response) => {
    state.fetches += 1;
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

/** A token as the provider would issue it; `claims` overrides or (undefined) removes any claim. */
function token(claims: Record<string, unknown> = {}, key: SigningKey = rsa): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const all: Record<string, unknown> = { iss: ISSUER, aud: AUDIENCE, sub: 'user-1', iat: now, exp: now + 300, ...claims };
  for (const name of Object.keys(all)) if (all[name] === undefined) delete all[name];
  return new jose.SignJWT(all).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
}

const base64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });

function startTurn(credential: string, chatId: string, base = service.url): Promise<SseConnection> {
  return openSse(`${base}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(credential) },
    body: JSON.stringify(userTurn(chatId, 'Hello')),
  });
}

const jwtEnvironment = (url: string) => ({ JWT_JWKS_URL: url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });

beforeAll(async () => {
  jose = await import('jose');
  upstream = await startFakeUpstream();
  rsa = await signingKey('key-rsa', 'RS256');
  ec = await signingKey('key-ec', 'ES256');
  jwks = await startKeySetServer([rsa.publicJwk]);
  service = await startTestService({ upstream, auth: true, configToml: '[limits]\nconcurrent_streams = 1\n', environment: jwtEnvironment(jwks.url) });
  apiKey = (await service.keys!.create('app')).key;
});

afterAll(async () => {
  await service?.close();
  await jwks?.close();
  await upstream?.close();
});

describe('a valid token', () => {
  test("makes its subject the owner: the subject's chats are theirs alone", async () => {
    const chatId = randomUUID();
    const mine = await token({ sub: 'user-1' });
    upstream.enqueue({ kind: 'stream', content: ['Hi ', 'user 1'] });
    const turn = await startTurn(mine, chatId);
    expect(turn.response.status).toBe(200);
    expect(await turn.readToEnd()).toContain('data: [DONE]');

    const listed = await call(service.url, 'GET', '/api/chats', bearer(mine));
    expect(listed.body.chats.map((chat: { chatId: string }) => chat.chatId)).toEqual([chatId]);
    const owner = jwtOwnerId(ISSUER, 'user-1');
    expect(owner).toMatch(/^jwt:[A-Za-z0-9_-]{43}$/);
    expect(await service.query('SELECT "ownerId" FROM "Chat" WHERE "id" = ?', chatId)).toEqual([{ ownerId: owner }]);

    // Another subject of the same provider, and an API key, see nothing of it.
    const theirs = await token({ sub: 'user-2' });
    expect((await call(service.url, 'GET', `/api/chats/${chatId}`, bearer(theirs))).status).toBe(404);
    expect((await call(service.url, 'GET', `/api/chats/${chatId}/messages`, bearer(theirs))).status).toBe(404);
    expect((await call(service.url, 'GET', '/api/chats', bearer(theirs))).body.chats).toEqual([]);
    expect((await call(service.url, 'GET', `/api/chats/${chatId}`, bearer(apiKey))).status).toBe(404);
    // A token of the same subject signed with another of the provider's keys is the same user.
    jwks.keys = [rsa.publicJwk, ec.publicJwk];
    const sameUser = await token({ sub: 'user-1' }, ec);
    await eventually(async () => ((await call(service.url, 'GET', `/api/chats/${chatId}`, bearer(sameUser))).status === 200 ? true : undefined), 8000);
  }, 20_000);

  test('is logged by its owner id, never by its content', async () => {
    const requestId = `jwt-log-${randomUUID()}`;
    const credential = await token({ sub: 'user-log' });
    expect((await call(service.url, 'GET', '/api/chats', { ...bearer(credential), 'x-request-id': requestId })).status).toBe(200);
    const line = await eventually(() => service.logs.find((text) => text.includes(requestId) && text.includes('"request completed"')));
    expect(JSON.parse(line)).toEqual({
      level: 30,
      time: expect.any(String),
      service: 'llm-streaming-service',
      requestId,
      ownerId: jwtOwnerId(ISSUER, 'user-log'),
      method: 'GET',
      url: '/api/chats',
      status: 200,
      responseTime: expect.any(Number),
      msg: 'request completed',
    });
    const logs = service.logs.join('\n');
    expect(logs).not.toContain(credential.split('.')[1]);
    expect(logs).not.toContain(credential.split('.')[2]);
    expect(logs).not.toContain('user-log');
  });

  test('within the 30 s clock tolerance, an expiry just past is accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await call(service.url, 'GET', '/api/chats', bearer(await token({ exp: now - 10, nbf: now + 10 })))).status).toBe(200);
  });

  test('API keys keep working beside tokens', async () => {
    expect((await call(service.url, 'GET', '/api/chats', bearer(apiKey))).status).toBe(200);
  });

  test('a stream token asked for with a JWT expires with it at the latest', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const answer = await call(service.url, 'POST', `/api/chat/${randomUUID()}/stream-token`, bearer(await token({ exp })));
    expect(answer.status).toBe(200);
    expect(Date.parse(answer.body.expiresAt)).toBe(exp * 1000);
  });
});

describe('refused tokens get 401 unauthorized', () => {
  const now = () => Math.floor(Date.now() / 1000);
  test.each<[string, () => Promise<string>, string]>([
    ['expired (beyond the clock tolerance)', () => token({ exp: now() - 60 }), 'The token has expired.'],
    ['not valid yet (nbf in the future)', () => token({ nbf: now() + 120 }), 'The token is not valid: "nbf" claim timestamp check failed.'],
    ['for another audience', () => token({ aud: 'api://another-service' }), 'The token is not valid: unexpected "aud" claim value.'],
    ['from another issuer', () => token({ iss: 'https://evil.example.com/' }), 'The token is not valid: unexpected "iss" claim value.'],
    ['without a subject', () => token({ sub: undefined }), 'The token is not valid: missing required "sub" claim.'],
    ['with an empty subject', () => token({ sub: '' }), 'The token has no subject ("sub").'],
    ['without an expiry', () => token({ exp: undefined }), 'The token is not valid: missing required "exp" claim.'],
    [
      'unsigned (alg: none)',
      async () => `${base64url({ alg: 'none', typ: 'JWT' })}.${(await token()).split('.')[1]}.`,
      'The token is not valid: its signature algorithm is not accepted.',
    ],
    [
      'HS256 with the public key as the HMAC secret (algorithm confusion)',
      async () => {
        const signingInput = `${base64url({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })}.${(await token()).split('.')[1]}`;
        return `${signingInput}.${createHmac('sha256', rsa.publicPem).update(signingInput).digest('base64url')}`;
      },
      'The token is not valid: its signature algorithm is not accepted.',
    ],
    [
      'with a tampered payload (another subject, same signature)',
      async () => {
        const [header, payload, signature] = (await token({ sub: 'user-1' })).split('.') as [string, string, string];
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
        return `${header}.${base64url({ ...claims, sub: 'user-2' })}.${signature}`;
      },
      'The token is not valid.',
    ],
    ['signed by a key the provider does not publish', async () => token({}, await signingKey('key-rsa', 'RS256')), 'The token is not valid.'],
  ])('%s', async (_name, make, message) => {
    const answer = await call(service.url, 'POST', '/api/chat', bearer(await make()), userTurn(randomUUID(), 'Hi'));
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    expect(answer.body).toEqual({ error: { code: 'unauthorized', message } });
  });
});

test('an unknown key id makes the service fetch the key set again: a rotated-in key is accepted', async () => {
  const rotated = await signingKey('key-rotated', 'RS256');
  const credential = await token({ sub: 'user-rotated' }, rotated);
  // Not published yet: refused, after looking for it.
  const before = jwks.fetches;
  expect((await call(service.url, 'GET', '/api/chats', bearer(credential))).status).toBe(401);
  jwks.keys = [rsa.publicJwk, ec.publicJwk, rotated.publicJwk];
  // Within the refetch cooldown (5 s) the cached set is used; then the new key is fetched.
  const accepted = await eventually(async () => {
    const answer = await call(service.url, 'GET', '/api/chats', bearer(credential));
    if (answer.status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
    return answer.status === 200 ? answer : undefined;
  }, 8000);
  expect(accepted.body).toEqual({ chats: [], nextCursor: null });
  expect(jwks.fetches).toBeGreaterThan(before);
  expect(jwks.fetches - before).toBeLessThanOrEqual(2);
}, 20_000);

test('limits are per subject: a second stream of one subject gets 429, another subject streams', async () => {
  const first = await token({ sub: 'user-limits-1' });
  const second = await token({ sub: 'user-limits-2' });
  const chatId = randomUUID();
  upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
  const running = await startTurn(first, chatId);
  expect(running.response.status).toBe(200);
  await running.readUntil((text) => text.includes('"text-delta"'));

  const refused = await call(service.url, 'POST', '/api/chat', bearer(first), userTurn(randomUUID(), 'Another'));
  expect(refused.status).toBe(429);
  expect(refused.body.error.code).toBe('rate_limited');

  upstream.enqueue({ kind: 'stream', content: ['Fine'] });
  const other = await startTurn(second, randomUUID());
  expect(other.response.status).toBe(200);
  expect(await other.readToEnd()).toContain('data: [DONE]');

  expect((await call(service.url, 'DELETE', `/api/chat/${chatId}/stream`, bearer(first))).body.status).toBe('cancelled');
  await running.readToEnd();
});

test('a key set that cannot be fetched answers 503 service_unavailable, and API keys still work', async () => {
  const gone = await startKeySetServer([rsa.publicJwk]);
  await gone.close();
  const down = await startTestService({ upstream, auth: true, environment: jwtEnvironment(gone.url) });
  try {
    const answer = await call(down.url, 'GET', '/api/chats', bearer(await token()));
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('5');
    expect(answer.body).toEqual({
      error: { code: 'service_unavailable', message: "The identity provider's signing keys cannot be fetched; retry shortly." },
    });
    const { key } = await down.keys!.create('app');
    expect((await call(down.url, 'GET', '/api/chats', bearer(key))).status).toBe(200);
  } finally {
    await down.close();
  }
});
