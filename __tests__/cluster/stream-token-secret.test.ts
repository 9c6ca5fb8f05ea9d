/**
 * The signing secret of stream tokens, shared by instances through Redis (the shared server, under
 * a prefix of this test's own): two instances agree on it, keep using it while Redis is away, and
 * agree again after Redis lost it (a server with no persistence that restarted).
 */
import pino from 'pino';
import { StreamTokens } from '../../src/auth/stream-tokens';
import { openRedisConnection, type RedisConnection } from '../../src/cluster/redis-connection';
import { coordinationUnavailable } from '../../src/cluster/coordination-unavailable';
import { sharedSecret } from '../../src/cluster/shared-secret';
import { connectRedis, redisUnreachable, removeRedisKeys, TEST_REDIS_URL, uniqueRedisPrefix } from '../support/redis-server';

const skipped = redisUnreachable();
if (skipped) process.stderr.write(`\nstream token secret tests skipped: ${skipped}\n`);
const describeRedis = skipped ? describe.skip : describe;

describeRedis('the stream token secret in Redis', () => {
  const prefix = uniqueRedisPrefix();
  const key = `${prefix}stream-token-secret`;
  const connections: RedisConnection[] = [];
  let clock = 1_000_000;

  afterAll(async () => {
    await Promise.all(connections.map((connection) => connection.close()));
    await removeRedisKeys(TEST_REDIS_URL, prefix);
  });

  /** An instance's tokens, on a Redis connection of its own, at `url`. */
  function instance(url = TEST_REDIS_URL): StreamTokens {
    const connection = openRedisConnection({ url, name: 'test', log: pino({ level: 'silent' }) });
    connections.push(connection);
    return new StreamTokens({ secret: (known) => sharedSecret(connection, key, known), ttlSeconds: 300, refreshMs: 1000, now: () => clock });
  }

  async function ready(): Promise<void> {
    for (const connection of connections) {
      for (let tries = 0; !connection.isReady && tries < 200; tries += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  test('instances agree, and after Redis lost the secret the first to ask puts it back: old tokens stay good everywhere', async () => {
    const [a, b] = [instance(), instance()];
    await ready();
    const before = await a.issue({ chatId: 'c1', ownerId: 'k1' });
    expect(await b.ownerOf(before.token, 'c1')).toBe('k1');

    const redis = await connectRedis(TEST_REDIS_URL);
    await redis.del(key);
    clock += 1500;
    // A refreshes first and offers the secret it uses; B, refreshing after, gets that one back.
    const after = await a.issue({ chatId: 'c2', ownerId: 'k1' });
    expect(await b.ownerOf(after.token, 'c2')).toBe('k1');
    expect(await b.ownerOf(before.token, 'c1')).toBe('k1');
    // A third instance, new since, gets the same secret too.
    const c = instance();
    await ready();
    expect(await c.ownerOf(before.token, 'c1')).toBe('k1');
    expect(await redis.exists(key)).toBe(1);
    await redis.quit();
  });

  test('an instance keeps the secret it has while Redis cannot be reached; one that has none gets 503', async () => {
    let redisAway = false;
    const connection = openRedisConnection({ url: TEST_REDIS_URL, name: 'test', log: pino({ level: 'silent' }) });
    connections.push(connection);
    await ready();
    // What sharedSecret answers while Redis is away: 503, as coordinationUnavailable makes it.
    const secret = (known?: Buffer) => (redisAway ? Promise.reject(coordinationUnavailable(new Error('ECONNREFUSED'))) : sharedSecret(connection, key, known));
    const a = new StreamTokens({ secret, ttlSeconds: 300, refreshMs: 1000, now: () => clock });
    const token = await a.issue({ chatId: 'c1', ownerId: 'k1' });
    redisAway = true;
    clock += 1500;
    // The refresh fails: the secret in use stays, and tokens are checked and made as before.
    expect(await a.ownerOf(token.token, 'c1')).toBe('k1');
    expect(await a.ownerOf((await a.issue({ chatId: 'c2', ownerId: 'k1' })).token, 'c2')).toBe('k1');
    // An instance that never had it cannot check a token: 503, and it asks again next time.
    const newcomer = new StreamTokens({ secret, ttlSeconds: 300, now: () => clock });
    await expect(newcomer.ownerOf(token.token, 'c1')).rejects.toMatchObject({ code: 'service_unavailable' });
    redisAway = false;
    expect(await newcomer.ownerOf(token.token, 'c1')).toBe('k1');
  });
});
