import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { ApiKeyRecord } from '../auth/api-keys';

/** The channel the ApiKey triggers notify (migration 20261202000000_api_key_change_notices). */
export const KEY_CHANGES_CHANNEL = 'lss_api_key_changes';

/** Prefixes kept at most: keys are few; past this the oldest entries go. */
const MAX_ENTRIES = 10_000;

export interface KeyCacheOptions {
  /** Where the listening connection goes: the store's own URL, so TLS and the other parameters apply. */
  connectionString: string;
  /** Sends a notification on the channel through the store's pool (`SELECT pg_notify($1, $2)`). */
  notify: (channel: string, payload: string) => Promise<void>;
  /** How often a probe checks that notifications still arrive. */
  probeIntervalMs: number;
  /** Told when the cache starts or stops serving, with why. */
  onState?: (serving: boolean, reason: string) => void;
}

/**
 * The keys this process has read, by prefix, kept only while PostgreSQL is heard telling of every
 * change to them. A trigger on ApiKey notifies each change, whoever makes it, when it commits;
 * this cache listens on a connection of its own and drops what a notice names. So a request needs
 * no round trip to check a key it has seen, and a key revoked anywhere is refused as soon as the
 * notice arrives (within milliseconds of the revocation's commit).
 *
 * Serving depends on hearing: until the first probe (a notice this process sends itself through
 * the pool) comes back on the listening connection, and whenever that connection fails or a probe
 * goes unanswered (a pooler in transaction mode delivers no notices), the cache is emptied and
 * every lookup goes to the database, until a new connection has heard a probe again. A read that
 * was under way when a notice of its prefix (or an outage) arrived is not kept, whatever it read.
 */
export class PostgresqlKeyCache {
  private readonly entries = new Map<string, ApiKeyRecord[]>();
  /** The reads under way, by prefix: a notice or an outage during a read marks it stale, so it is not kept. */
  private readonly reading = new Map<string, Set<{ stale: boolean }>>();
  private serving = false;
  private listener: Client | undefined;
  private probe: { token: string; heard: () => void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: KeyCacheOptions) {}

  /** Starts listening, in the background: lookups go to the database until the first probe is heard. */
  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.options.probeIntervalMs);
    this.timer.unref();
  }

  /** The keys with `prefix`: from the cache while it serves, else from `read` (kept if nothing changed meanwhile). */
  async lookup(prefix: string, read: () => Promise<ApiKeyRecord[]>): Promise<ApiKeyRecord[]> {
    const kept = this.serving ? this.entries.get(prefix) : undefined;
    if (kept) return kept;
    const reads = this.reading.get(prefix) ?? new Set();
    this.reading.set(prefix, reads);
    const current = { stale: false };
    reads.add(current);
    let keys: ApiKeyRecord[];
    try {
      keys = await read();
    } finally {
      reads.delete(current);
      if (reads.size === 0) this.reading.delete(prefix);
    }
    // Unknown prefixes are not kept: guesses must not fill the cache, and a new key needs no notice.
    if (this.serving && !current.stale && keys.length > 0) {
      if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(prefix, keys);
    }
    return keys;
  }

  /** Drops what this process knows of `prefix` (its own writes do not wait for their notice). */
  forget(prefix: string): void {
    this.entries.delete(prefix);
    for (const read of this.reading.get(prefix) ?? []) read.stale = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.goDown('stopped');
    await this.closeListener();
  }

  /** Connects if needed, then sends a probe and waits up to one interval to hear it. */
  private async check(): Promise<void> {
    if (this.stopped || this.probe) return;
    try {
      if (!this.listener) await this.listen();
      const token = randomUUID();
      const heard = new Promise<boolean>((resolve) => {
        this.probe = { token, heard: () => resolve(true) };
        setTimeout(() => resolve(false), this.options.probeIntervalMs).unref();
      });
      await this.options.notify(KEY_CHANGES_CHANNEL, `probe ${token}`);
      if (await heard) {
        if (!this.serving && !this.stopped) {
          this.serving = true;
          this.options.onState?.(true, 'notices of key changes arrive');
        }
      } else {
        this.goDown('a probe notice did not come back');
        await this.closeListener();
      }
    } catch (error) {
      this.goDown(`listening for key changes failed: ${error instanceof Error ? error.message : String(error)}`);
      await this.closeListener();
    } finally {
      this.probe = undefined;
    }
  }

  private async listen(): Promise<void> {
    const client = new Client({ connectionString: this.options.connectionString, connectionTimeoutMillis: 10_000, keepAlive: true });
    client.on('notification', (message) => this.heard(message.payload ?? '*'));
    // A listening connection that breaks loses notices: stop serving at once; the next probe reconnects.
    client.on('error', () => {
      if (this.listener === client) this.listener = undefined;
      this.goDown('the listening connection failed');
      void client.end().catch(() => undefined);
    });
    client.on('end', () => {
      if (this.listener === client) {
        this.listener = undefined;
        this.goDown('the listening connection closed');
      }
    });
    this.listener = client;
    await client.connect();
    await client.query(`LISTEN ${KEY_CHANGES_CHANNEL}`);
  }

  private heard(payload: string): void {
    if (payload.startsWith('probe ')) {
      if (this.probe?.token === payload.slice('probe '.length)) this.probe.heard();
      return;
    }
    if (payload === '*') this.forgetAll();
    else this.forget(payload);
  }

  private forgetAll(): void {
    this.entries.clear();
    for (const reads of this.reading.values()) for (const read of reads) read.stale = true;
  }

  private goDown(reason: string): void {
    this.forgetAll();
    if (!this.serving) return;
    this.serving = false;
    if (!this.stopped) this.options.onState?.(false, reason);
  }

  private async closeListener(): Promise<void> {
    const client = this.listener;
    this.listener = undefined;
    await client?.end().catch(() => undefined);
  }
}
