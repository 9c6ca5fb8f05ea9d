import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { ChatStore } from './ports';

/**
 * This instance's name: `[cluster] instance_id`, or the host name and port, which stay the same
 * across restarts of one deployment and differ between instances on one host. Port 0 (a port
 * picked at each start) names nothing stable, so the process id stands in for it. Workers sharing
 * a port are told apart by their number, which a worker started in place of another keeps.
 */
export function instanceIdentity(configured: string, port: number, worker?: number): string {
  const base = configured.trim() || (port === 0 ? `${hostname()}:pid-${process.pid}` : `${hostname()}:${port}`);
  return worker === undefined ? base : `${base}/worker-${worker}`;
}

export interface InstanceLeaseOptions {
  store: ChatStore;
  instanceId: string;
  leaseMs: number;
  log: Logger;
}

/**
 * Keeps this instance's lease and sweeps what others left: renews the lease every third of its
 * length, and each time marks as interrupted the replies of instances whose lease has lapsed. A
 * renewal that fails is logged and tried again at the next tick: the lease has two more in hand.
 */
export class InstanceLease {
  private timer: NodeJS.Timeout | undefined;
  private tick: Promise<void> = Promise.resolve();

  constructor(private readonly options: InstanceLeaseOptions) {}

  /**
   * Takes the lease and marks as interrupted what this instance's last run left streaming (and
   * what lapsed instances left), before the server takes requests.
   * @returns how many replies were marked interrupted.
   */
  async start(): Promise<number> {
    const { store, instanceId, leaseMs } = this.options;
    await store.renewLease(instanceId, leaseMs);
    const swept = await store.interruptAbandonedReplies({ instanceId, includeOwn: true });
    this.timer = setInterval(() => {
      this.tick = this.tick.then(() => this.renewAndSweep());
    }, Math.max(500, Math.floor(leaseMs / 3)));
    this.timer.unref();
    return swept;
  }

  /**
   * Stops renewing and gives the lease up, so that whatever this instance left is swept at once.
   * `release: false` leaves the lease to lapse by itself (a start that failed: the name may be a
   * running instance's, whose lease is not this process's to give up).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tick;
    if (options.release === false) return;
    await this.options.store.releaseLease(this.options.instanceId).catch((error: unknown) => {
      this.options.log.warn({ err: error }, 'could not give up the instance lease; it lapses by itself');
    });
  }

  private async renewAndSweep(): Promise<void> {
    const { store, instanceId, leaseMs, log } = this.options;
    try {
      await store.renewLease(instanceId, leaseMs);
      const swept = await store.interruptAbandonedReplies({ instanceId, includeOwn: false });
      if (swept > 0) log.warn({ interruptedReplies: swept }, 'replies of an instance whose lease lapsed marked interrupted');
    } catch (error) {
      log.warn({ err: error, instanceId }, 'could not renew the instance lease; trying again');
    }
  }
}
