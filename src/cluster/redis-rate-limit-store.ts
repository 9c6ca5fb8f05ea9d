import { createHash } from 'node:crypto';
import type { Store } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import { coordinationUnavailable } from './coordination-unavailable';
import type { RedisConnection } from './redis-connection';

/**
 * express-rate-limit's counts kept in Redis (rate-limit-redis), so that every instance counts
 * every request of a key. Two adjustments, for Redis outages:
 * - rate-limit-redis loads its scripts once, at start, and keeps the promise: had Redis been down
 *   then, every later count would fail on that rejected promise, for good. A failed SCRIPT LOAD
 *   here answers with the script's SHA1 (it is just that), so the first EVALSHA once Redis is
 *   back gets NOSCRIPT, which rate-limit-redis handles by loading the script.
 * - A count that fails is a 503 service_unavailable, not a 500 and not a request let through.
 */
export function redisRateLimitStore(connection: RedisConnection, prefix: string): Store {
  const store = new RedisStore({
    prefix: `${prefix}rl:`,
    sendCommand: async (...command: string[]) => {
      try {
        return await connection.command(command);
      } catch (error) {
        if (command[0] === 'SCRIPT' && command[1] === 'LOAD' && command[2]) return createHash('sha1').update(command[2]).digest('hex');
        throw error;
      }
    },
  });
  const unavailable = (error: unknown): never => {
    throw coordinationUnavailable(error);
  };
  return {
    prefix: store.prefix,
    localKeys: false,
    init: (options) => store.init(options),
    get: (key) => store.get(key).catch(unavailable),
    increment: (key) => store.increment(key).catch(unavailable),
    decrement: (key) => store.decrement(key).catch(unavailable),
    resetKey: (key) => store.resetKey(key).catch(unavailable),
  };
}
