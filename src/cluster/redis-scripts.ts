import { createHash } from 'node:crypto';
import type { RedisConnection } from './redis-connection';

/**
 * The Lua scripts of multi-instance mode. Each runs atomically in Redis, which is what makes a
 * claim a claim: no other instance can act between its read and its write. Times come from the
 * Redis server's clock (TIME), so the instances' clocks never have to agree.
 */

const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Claims a chat for a reply and takes one of its owner's turn slots, or says why not.
 * KEYS: the chat's lock, the owner's turn slots, the fencing counter.
 * ARGV: "messageId|instanceId", lease ms, most turns (0: no limit), the slot's member, and a
 * lock value that may be replaced ("" for none: this instance's own, left by its last run).
 * The lock's value starts with a fencing token from the counter: renewing or releasing it checks
 * the whole value, so a holder whose claim lapsed and was taken over can touch neither.
 */
export const CLAIM_TURN = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[5] then return {'busy', holder} end
${NOW}
local lease = tonumber(ARGV[2])
local most = tonumber(ARGV[3])
if most > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= most then return {'limited'} end
  redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], lease)
end
local value = redis.call('INCR', KEYS[3]) .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', lease)
return {'claimed', value}`;

/** KEYS: the chat's lock, the owner's turn slots. ARGV: the lock's value, the slot's member (or ""). */
export const RELEASE_TURN = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
return 1`;

/**
 * Takes one of `most` slots, dropping the ones whose holder stopped renewing them.
 * KEYS: the slots. ARGV: lease ms, most, the slot's member. Returns 1 when taken, 0 when all are.
 */
export const TAKE_SLOT = `
${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`;

/**
 * Renews everything one instance holds. KEYS: its locks, then its slot sets. ARGV: lease ms, how
 * many locks, then each key's value (a lock's value, a slot's member). A lock that is gone (Redis
 * restarted empty) is put back; one that another reply holds now is left alone.
 */
export const RENEW = `
${NOW}
local lease = tonumber(ARGV[1])
local locks = tonumber(ARGV[2])
for i = 1, #KEYS do
  local value = ARGV[2 + i]
  if i <= locks then
    local current = redis.call('GET', KEYS[i])
    if current == value then redis.call('PEXPIRE', KEYS[i], lease)
    elseif not current then redis.call('SET', KEYS[i], value, 'PX', lease) end
  else
    redis.call('ZADD', KEYS[i], now + lease, value)
    redis.call('PEXPIRE', KEYS[i], lease)
  end
end
return #KEYS`;

const shaOf = new Map<string, string>();

/**
 * Runs `script` by its SHA1 (EVALSHA), sending the text (EVAL) only when Redis does not know it
 * yet: after its start, or a restart, which forgets scripts.
 */
export async function runScript<T>(connection: RedisConnection, script: string, keys: string[], args: Array<string | number>): Promise<T> {
  let sha = shaOf.get(script);
  if (!sha) {
    sha = createHash('sha1').update(script).digest('hex');
    shaOf.set(script, sha);
  }
  const rest = [String(keys.length), ...keys, ...args.map(String)];
  try {
    return await connection.command<T>(['EVALSHA', sha, ...rest]);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return connection.command<T>(['EVAL', script, ...rest]);
  }
}
