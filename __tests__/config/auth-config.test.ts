import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { ConfigError } from '../../src/config/config-error';
import { jwtSettings, loadConfig, type Environment } from '../../src/config/load-config';

const DEFAULTS_PATH = path.join(PROJECT_ROOT, 'config', 'default.toml');
const JWT = { JWT_JWKS_URL: 'https://login.example.com/keys', JWT_ISSUER: 'https://login.example.com/', JWT_AUDIENCE: 'api://chat' };

function configErrorOf(environment: Environment): string {
  try {
    loadConfig(DEFAULTS_PATH, environment);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('[auth] stream tokens and JWT settings', () => {
  test('default: stream tokens live 300 s; no JWT accepted', () => {
    const config = loadConfig(DEFAULTS_PATH, {});
    expect(config.auth.stream_token_ttl_seconds).toBe(300);
    expect(jwtSettings(config)).toBeUndefined();
  });

  test('the environment sets all four', () => {
    const config = loadConfig(DEFAULTS_PATH, { ...JWT, STREAM_TOKEN_TTL_SECONDS: '60' });
    expect(config.auth).toEqual({
      enabled: true,
      stream_token_ttl_seconds: 60,
      jwt_jwks_url: JWT.JWT_JWKS_URL,
      jwt_issuer: JWT.JWT_ISSUER,
      jwt_audience: JWT.JWT_AUDIENCE,
    });
    expect(jwtSettings(config)).toEqual({ jwksUrl: JWT.JWT_JWKS_URL, issuer: JWT.JWT_ISSUER, audience: JWT.JWT_AUDIENCE });
  });

  test.each([
    [{ JWT_JWKS_URL: JWT.JWT_JWKS_URL }, 'not set: auth.jwt_issuer (JWT_ISSUER), auth.jwt_audience (JWT_AUDIENCE)'],
    [{ JWT_ISSUER: JWT.JWT_ISSUER, JWT_AUDIENCE: JWT.JWT_AUDIENCE }, 'not set: auth.jwt_jwks_url (JWT_JWKS_URL)'],
  ])('only some JWT settings is an error naming the missing ones: %j', (environment, missing) => {
    expect(configErrorOf(environment)).toContain(missing);
  });

  test.each<[Environment, string]>([
    [{ STREAM_TOKEN_TTL_SECONDS: '0' }, 'auth.stream_token_ttl_seconds'],
    [{ STREAM_TOKEN_TTL_SECONDS: '5m' }, 'auth.stream_token_ttl_seconds: expected a whole number of seconds'],
    [{ ...JWT, JWT_JWKS_URL: 'login.example.com/keys' }, 'auth.jwt_jwks_url: expected a URL'],
  ])('rejects %j', (environment, message) => {
    expect(configErrorOf(environment)).toContain(message);
  });

  test('JWT settings with auth off are an error rather than a protection that is not there', () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'auth-config-'));
    try {
      const overlay = path.join(directory, 'auth-off.toml');
      writeFileSync(overlay, '[auth]\nenabled = false\n');
      expect(configErrorOf({ ...JWT, CONFIG_PATH: overlay })).toContain('auth.enabled is false');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
