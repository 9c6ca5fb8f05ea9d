import type { Logger } from 'pino';
import type { RedisConnection } from './redis-connection';
import { RENEW, runScript } from './redis-scripts';

/**
 * What one instance holds in Redis (chat locks and per-key slots), renewed together in one
 * script every third of the lease, so that a dead instance's holdings lapse by themselves and a
 * Redis that restarted empty gets them back.
 */
export class RedisHoldings {
  /** Chat locks: key → value. */
  private readonly locks = new Map<string, string>();
  /** Slots: member → the key of their set. */
  private readonly slots = new Map<string, string>();
  private renewing = false;
  /** A renewal failed and none has succeeded since: later failures are not logged again. */
  private failing = false;

  constructor(
    private readonly connection: RedisConnection,
    private readonly leaseMs: number,
    private readonly log: Logger,
  ) {}

  addLock(key: string, value: string): void {
    this.locks.set(key, value);
  }

  dropLock(key: string): void {
    this.locks.delete(key);
  }

  addSlot(member: string, key: string): void {
    this.slots.set(member, key);
  }

  /** @returns false when the slot was not held (already dropped). */
  dropSlot(member: string): boolean {
    return this.slots.delete(member);
  }

  async renew(): Promise<void> {
    if (this.renewing || (this.locks.size === 0 && this.slots.size === 0)) return;
    this.renewing = true;
    try {
      const keys = [...this.locks.keys(), ...this.slots.values()];
      const values = [...this.locks.values(), ...this.slots.keys()];
      await runScript(this.connection, RENEW, keys, [this.leaseMs, this.locks.size, ...values]);
      if (this.failing) this.log.info('renewed what this instance holds in Redis again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.log.warn({ err: error }, 'could not renew what this instance holds in Redis; trying again');
      this.failing = true;
    } finally {
      this.renewing = false;
    }
  }
}
