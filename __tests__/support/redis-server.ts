import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { PROJECT_ROOT } from '../../src/build-service';

/** The Redis the multi-instance tests share; each run uses keys under a prefix of its own and removes them. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL?.trim() || 'redis://127.0.0.1:6379';

/** The machine's Redis binary, for tests that stop and start a Redis of their own. */
export const REDIS_SERVER_BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((file) => existsSync(file));

const AVAILABILITY = 'LSS_TEST_REDIS_UNREACHABLE';

/**
 * For jest's globalSetup: checks once per run whether Redis answers at TEST_REDIS_URL. Where it
 * does not, says so in one line and lets its tests be skipped, or fails the run when
 * REQUIRE_POSTGRES=1 (the project's machines and CI have both).
 */
export function checkRedisOnce(): void {
  const script = `const { Redis } = require('ioredis');
const client = new Redis(process.argv[1], { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
client.on('error', () => {});
client.connect().then(() => client.ping()).then(() => client.quit()).then(() => process.exit(0), (error) => { process.stderr.write(error.message || String(error)); process.exit(1); });`;
  const result = spawnSync(process.execPath, ['-e', script, TEST_REDIS_URL], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 10_000 });
  const unreachable = result.status === 0 ? undefined : result.stderr.trim().split('\n')[0] || 'no answer';
  process.env[AVAILABILITY] = unreachable ?? '';
  if (unreachable === undefined) return;
  const where = `no Redis answers at ${TEST_REDIS_URL} (${unreachable})`;
  if (process.env.REQUIRE_POSTGRES === '1') throw new Error(`Multi-instance tests cannot run: ${where}, and REQUIRE_POSTGRES=1.`);
  process.stderr.write(`\nMulti-instance tests skipped: ${where}; set TEST_REDIS_URL to one.\n`);
}

/** Why Redis does not answer, or undefined when it does. */
export function redisUnreachable(): string | undefined {
  if (process.env[AVAILABILITY] === undefined) checkRedisOnce();
  return process.env[AVAILABILITY] || undefined;
}

/** A key prefix no other run uses: `lss:test:<random>:`. */
export function uniqueRedisPrefix(): string {
  return `lss:test:${randomBytes(5).toString('hex')}:`;
}

/** A client for a test's own checks: it does not retry, so a Redis that is away fails the call at once. */
export async function connectRedis(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Removes every key under `prefix` from the Redis at `url`. */
export async function removeRedisKeys(url: string, prefix: string): Promise<void> {
  const client = await connectRedis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    await client.quit();
  }
}

/** The keys under `prefix`. */
export async function redisKeys(url: string, prefix: string): Promise<string[]> {
  const client = await connectRedis(url);
  try {
    return (await client.keys(`${prefix}*`)).sort();
  } finally {
    await client.quit();
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A Redis of a test's own, on its own port, to stop and start: never the shared one. */
export interface OwnRedis {
  url: string;
  start(): Promise<void>;
  /** Kills it (SIGKILL): an outage, not a shutdown. */
  kill(): Promise<void>;
}

export async function ownRedis(binary: string): Promise<OwnRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  return {
    url,
    async start() {
      child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await (await connectRedis(url)).quit();
          return;
        } catch {
          if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    },
    async kill() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
