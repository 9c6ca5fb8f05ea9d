import { createHash } from 'node:crypto';
import type { JWTVerifyGetKey } from 'jose' with { 'resolution-mode': 'import' };
import { AppError } from '../errors/app-error';

export interface JwtSettings {
  /** The identity provider's signing keys (JWKS). */
  jwksUrl: string;
  /** The exact `iss` of its tokens. */
  issuer: string;
  /** The `aud` naming this API. */
  audience: string;
}

export type JwtCheck =
  | { ok: true; ownerId: string; expiresAt: Date }
  | { ok: false; message: string };

/** Checks an end user's JWT; throws AppError service_unavailable when the keys cannot be fetched. */
export type JwtVerifier = (token: string) => Promise<JwtCheck>;

/**
 * Signature algorithms accepted: asymmetric ones only. `none` and the HMAC family (HS*) are never
 * accepted, so a token "signed" with the provider's public key as an HMAC secret (algorithm
 * confusion) is refused before any key is looked at.
 */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Clocks of the provider and of this host may differ by this much (seconds). */
const CLOCK_TOLERANCE_SECONDS = 30;
/**
 * A token with a key id not in the cached set refetches the set, at most this often: providers
 * that start signing with a new key as soon as they publish it (Keycloak) are followed within
 * seconds, while tokens with made-up key ids cannot make this service hammer the provider.
 */
const REFETCH_COOLDOWN_MS = 5_000;
/** The set is refetched this long after it was fetched, even when every key id is known. */
const CACHE_MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 5_000;
/** What jose throws when the fetched set has no key for the token: the token's fault, not the provider's. */
const TOKEN_KEY_ERRORS = new Set(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JOSE_NOT_SUPPORTED']);

/**
 * The owner of an end user's chats: the issuer and subject, hashed. Fixed length and plain
 * characters, whatever a provider puts in `sub` (it goes into database keys, Redis keys and log
 * lines); the `jwt:` prefix keeps it apart from API key ids (UUIDs) and `local`.
 */
export function jwtOwnerId(issuer: string, subject: string): string {
  return `jwt:${createHash('sha256').update(JSON.stringify([issuer, subject])).digest('base64url')}`;
}

/**
 * A verifier of the provider's JWTs with jose: signature against the provider's JWKS (fetched on
 * first use, cached, refetched for an unknown key id), `iss`, `aud`, `exp` and `nbf` (with 30 s of
 * clock tolerance), an asymmetric algorithm, and a `sub`.
 */
export function createJwtVerifier(settings: JwtSettings): JwtVerifier {
  let keySet: Promise<JWTVerifyGetKey> | undefined;
  const keys: JWTVerifyGetKey = async (header, token) => {
    keySet ??= loadJose().then((jose) =>
      jose.createRemoteJWKSet(new URL(settings.jwksUrl), {
        timeoutDuration: FETCH_TIMEOUT_MS,
        cooldownDuration: REFETCH_COOLDOWN_MS,
        cacheMaxAge: CACHE_MAX_AGE_MS,
      }),
    );
    try {
      return await (await keySet)(header, token);
    } catch (error) {
      if (TOKEN_KEY_ERRORS.has((error as { code?: string }).code ?? '')) throw error;
      throw new AppError('service_unavailable', "The identity provider's signing keys cannot be fetched; retry shortly.", {
        cause: error,
        retryAfterSeconds: 5,
      });
    }
  };
  return async (token) => {
    const jose = await loadJose();
    try {
      const { payload } = await jose.jwtVerify(token, keys, {
        algorithms: ALGORITHMS,
        issuer: settings.issuer,
        audience: settings.audience,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub'],
      });
      if (typeof payload.sub !== 'string' || payload.sub === '') return { ok: false, message: 'The token has no subject ("sub").' };
      return { ok: true, ownerId: jwtOwnerId(settings.issuer, payload.sub), expiresAt: new Date(payload.exp! * 1000) };
    } catch (error) {
      if (error instanceof AppError) throw error;
      return { ok: false, message: refusal(error) };
    }
  };
}

/** Why a token was refused, for its sender: which check failed, never what was expected. */
function refusal(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  if (code === 'ERR_JWT_EXPIRED') return 'The token has expired.';
  // jose names the claim ("nbf" claim timestamp check failed, unexpected "aud" claim value).
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') return `The token is not valid: ${message}.`;
  if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') return 'The token is not valid: its signature algorithm is not accepted.';
  return 'The token is not valid.';
}

/**
 * jose is published as ES modules only, which this CommonJS build can reach only through import()
 * (Node loads it natively; Jest compiles it, see jest.config.ts).
 */
function loadJose(): Promise<typeof import('jose', { with: { 'resolution-mode': 'import' } })> {
  return import('jose');
}
