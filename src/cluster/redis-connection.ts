import { createClient } from '@redis/client';
import type { Logger } from 'pino';

export type RedisConnection = ReturnType<typeof newClient>;

function newClient(url: string, name: string) {
  return createClient({
    url,
    name: `llm-streaming-service/${name}`,
    disableOfflineQueue: true,
    socket: { connectTimeout: 2000, reconnectStrategy: (retries) => Math.min(50 * 2 ** retries, 2000) },
  });
}

/**
 * A connection to Redis that fails fast while Redis is away (no offline queue: a command is
 * refused at once rather than held until it returns) and reconnects by itself, with backoff up
 * to 2 s. Each outage is logged once when it starts and once when it ends; `onReady` runs after
 * every (re)connection. The returned connection is connecting: `connect()` is not awaited, so a
 * start while Redis is down goes on, and readiness says so.
 */
export function openRedisConnection(options: { url: string; name: string; log: Logger; onReady?: () => void }): RedisConnection {
  const { url, name, log, onReady } = options;
  const connection = newClient(url, name);
  let reachable: boolean | undefined;
  connection.on('error', (error: Error) => {
    if (reachable === false) return;
    reachable = false;
    log.warn({ err: error, connection: name }, 'Redis is not reachable: new turns are refused until it is back');
  });
  connection.on('ready', () => {
    if (reachable === false) log.info({ connection: name }, 'Redis is reachable again');
    reachable = true;
    onReady?.();
  });
  // Rejects only when closed before it connected; the 'error' events say why.
  connection.connect().catch(() => undefined);
  return connection;
}
