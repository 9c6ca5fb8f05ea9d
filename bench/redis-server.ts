import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/**
 * The Redis a cluster run measures on (BENCH_REDIS_URL). Like the PostgreSQL server, it may be
 * shared: a run works under its own key prefix and, at the end (on failure and Ctrl-C too),
 * deletes the keys under that prefix and nothing else. Never FLUSHDB.
 */

/** Prefixes this process handed out and has not cleaned yet: prefix → Redis URL. */
const prefixes = new Map<string, string>();

async function withClient<T>(url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  // No reconnection: a bench that cannot reach Redis should say so at once, not retry forever.
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined); // the failed command or connect() rejects with it
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.quit().catch(() => client.disconnect());
  }
}

/** A fresh `[cluster] redis_prefix` for one run, remembered until `deletePrefixKeys`. */
export function createBenchPrefix(redisUrl: string): string {
  const prefix = `lss:bench:${process.pid}:${randomBytes(4).toString('hex')}:`;
  prefixes.set(prefix, redisUrl);
  return prefix;
}

/** Deletes every key under `prefix` (SCAN, not KEYS: the server may be serving others meanwhile). */
export async function deletePrefixKeys(prefix: string): Promise<number> {
  const redisUrl = prefixes.get(prefix);
  if (redisUrl === undefined) return 0;
  const deleted = await withClient(redisUrl, async (client) => {
    let count = 0;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) count += await client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    return count;
  });
  prefixes.delete(prefix);
  return deleted;
}

/** Deletes the keys of every prefix still left, in parallel. */
export async function deleteAllBenchPrefixes(): Promise<void> {
  await Promise.all([...prefixes.keys()].map((prefix) => deletePrefixKeys(prefix).catch(() => undefined)));
}

/**
 * Last resort on process exit, which allows no asynchronous work: deletes what is left from a
 * short-lived Node process, synchronously.
 */
export function deleteAllBenchPrefixesNow(): void {
  for (const [prefix, redisUrl] of prefixes) {
    const script = `const { Redis } = require(${JSON.stringify(require.resolve('ioredis'))});
      const client = new Redis(process.env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on('error', () => undefined);
      (async () => {
        await client.connect();
        let cursor = '0';
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', process.env.PREFIX + '*', 'COUNT', 1000);
          if (keys.length) await client.unlink(...keys);
          cursor = next;
        } while (cursor !== '0');
      })().finally(() => client.disconnect());`;
    spawnSync(process.execPath, ['-e', script], { env: { ...process.env, REDIS_URL: redisUrl, PREFIX: prefix }, stdio: 'ignore', timeout: 10_000 });
  }
  prefixes.clear();
}

export interface RedisStats {
  version: string;
  /** CPU the server has used so far (user + system, all its threads), in ms. */
  cpuMs: number;
  /** Commands the server has processed so far, from every client (the server may be shared). */
  commands: number;
  /** Calls so far by command name (INFO commandstats: scripts' own commands included), from every client. */
  calls: Record<string, number>;
}

/** The server's counters, from INFO: read before and after a round, their difference is the round's. */
export function readRedisStats(redisUrl: string): Promise<RedisStats> {
  return withClient(redisUrl, async (client) => {
    // Several sections in one INFO (Redis 7); commandstats is not among the default ones.
    const info = String(await client.call('INFO', 'server', 'cpu', 'stats', 'commandstats'));
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
    const calls: Record<string, number> = {};
    for (const [, name, count] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[name!] = Number(count);
    return {
      version: field('redis_version'),
      cpuMs: (Number(field('used_cpu_user')) + Number(field('used_cpu_sys'))) * 1000,
      commands: Number(field('total_commands_processed')),
      calls,
    };
  });
}
