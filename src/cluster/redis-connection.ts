import { Redis } from 'ioredis';
import type { Logger } from 'pino';

type Listener = (message: string) => void;

export interface RedisConnectionOptions {
  url: string;
  /** Names the connection in Redis (CLIENT LIST) and in the log. */
  name: string;
  log: Logger;
  /** Runs after every (re)connection. */
  onReady?: () => void;
}

/**
 * One connection to Redis (ioredis), which fails fast while Redis is away and reconnects by
 * itself, with backoff up to 2 s:
 * - no offline queue: a command made while Redis is away is refused at once rather than held;
 * - no command is retried or re-sent after a reconnection: a script that claimed a chat and whose
 *   answer was lost must not run twice.
 * Each outage is logged once when it starts and once when it ends. Commands are written to the
 * socket as they are made (ioredis does not wait for the end of the event loop's turn, as
 * node-redis does), which is what keeps a reply's parts moving to other instances without delay
 * under load (bench/cluster-results.md). Connecting is not awaited: a start while Redis is down
 * goes on, and readiness says so.
 */
export class RedisConnection {
  readonly client: Redis;
  /** Channels this connection is subscribed to, their listeners, and the SUBSCRIBE in flight. */
  private readonly channels = new Map<string, { listeners: Set<Listener>; subscribed: Promise<unknown> }>();
  private reachable: boolean | undefined;

  constructor(options: RedisConnectionOptions) {
    const { url, name, log, onReady } = options;
    this.client = new Redis(url, {
      connectionName: `llm-streaming-service/${name}`,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: 2000,
      retryStrategy: (attempts) => Math.min(50 * 2 ** attempts, 2000),
    });
    this.client.on('error', (error: Error) => {
      if (this.reachable === false) return;
      this.reachable = false;
      log.warn({ err: error, connection: name }, 'Redis is not reachable: new turns are refused until it is back');
    });
    this.client.on('ready', () => {
      if (this.reachable === false) log.info({ connection: name }, 'Redis is reachable again');
      this.reachable = true;
      onReady?.();
    });
    this.client.on('message', (channel: string, message: string) => {
      for (const listener of this.channels.get(channel)?.listeners ?? []) listener(message);
    });
  }

  get isReady(): boolean {
    return this.client.status === 'ready';
  }

  /** Sends `command` (its name, then its arguments) and resolves with Redis's answer. */
  command<T>(command: Array<string | number>): Promise<T> {
    const [name, ...args] = command;
    return this.client.call(String(name), ...args) as Promise<T>;
  }

  publish(channel: string, message: string): Promise<number> {
    return this.client.publish(channel, message);
  }

  /** Calls `listener` with every message on `channel`, once Redis has confirmed the subscription. */
  async subscribe(channel: string, listener: Listener): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: this.client.subscribe(channel) };
      this.channels.set(channel, entry);
      entry.subscribed.catch(() => {
        if (this.channels.get(channel) === entry) this.channels.delete(channel);
      });
    }
    entry.listeners.add(listener);
    await entry.subscribed;
  }

  async unsubscribe(channel: string, listener: Listener): Promise<void> {
    const entry = this.channels.get(channel);
    if (!entry?.listeners.delete(listener) || entry.listeners.size > 0) return;
    this.channels.delete(channel);
    await this.client.unsubscribe(channel);
  }

  /** Closes the connection: gracefully (pending answers come in) when it is up, at once when it is not. */
  async close(): Promise<void> {
    if (this.isReady) {
      await this.client.quit().catch(() => this.client.disconnect());
    } else {
      this.client.disconnect();
    }
  }
}

/** Opens a connection (see RedisConnection). */
export function openRedisConnection(options: RedisConnectionOptions): RedisConnection {
  return new RedisConnection(options);
}
