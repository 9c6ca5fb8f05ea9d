import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Cluster, LocalReplies, ReplyHolder, TurnClaim } from '../chat/cluster';
import type { MessageStatus } from '../chat/ports';
import type { ReplyStream } from '../chat/reply-stream';
import { AppError } from '../errors/app-error';
import { coordinationUnavailable } from './coordination-unavailable';
import { ReplyFollowers } from './reply-followers';
import { ReplyPublisher } from './reply-publisher';
import { controlChannel, replyChannel, type ControlMessage, type ReplyMessage } from './reply-messages';
import { openRedisConnection, type RedisConnection } from './redis-connection';
import { RedisHoldings } from './redis-holdings';
import { CLAIM_TURN, RELEASE_TURN, TAKE_SLOT, runScript } from './redis-scripts';

export interface RedisClusterOptions {
  url: string;
  /** Every key and channel starts with it. */
  prefix: string;
  instanceId: string;
  /** How long a claim or slot outlives the last renewal of the instance that holds it. */
  leaseMs: number;
  /** How long a cancel waits for the instance generating the reply to store it. */
  cancelWaitMs: number;
  log: Logger;
}

/**
 * Multi-instance mode, on Redis: each chat's reply claimed by a lock with expiry and a fencing
 * token, per-key slots that lapse with the instance holding them, and replies read or cancelled
 * from any instance over pub/sub. What this instance holds is renewed every third of the lease.
 */
export class RedisCluster implements Cluster {
  readonly instanceId: string;
  /** Commands, and the rate limiter's counts. */
  readonly connection: RedisConnection;
  private readonly subscriber: RedisConnection;
  private readonly publisher: ReplyPublisher;
  private readonly followers: ReplyFollowers;
  private readonly holdings: RedisHoldings;
  /** This instance's running replies, once it serves. */
  private replies: LocalReplies | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: RedisClusterOptions) {
    const { url, log, instanceId, leaseMs } = options;
    this.instanceId = instanceId;
    this.connection = openRedisConnection({ url, name: 'commands', log, onReady: () => void this.holdings.renew() });
    this.holdings = new RedisHoldings(this.connection, leaseMs, log);
    this.subscriber = openRedisConnection({ url, name: 'subscriber', log, onReady: () => this.followers.resync() });
    this.publisher = new ReplyPublisher((channel, message) => this.publish(channel, message), leaseMs);
    this.followers = new ReplyFollowers({
      instanceId,
      leaseMs,
      subscribe: (channel, listener) => this.subscriber.subscribe(channel, listener),
      unsubscribe: (channel, listener) => this.subscriber.unsubscribe(channel, listener),
      ask: (holder, message) => this.send(holder.instanceId, message),
      channelOf: (messageId) => replyChannel(options.prefix, messageId),
    });
    this.timer = setInterval(() => {
      void this.holdings.renew();
      this.publisher.keepAlive();
      this.followers.keepAlive();
    }, Math.max(250, Math.floor(leaseMs / 3)));
    this.timer.unref();
  }

  async claimTurn(request: { ownerId: string; chatId: string; messageId: string; maxTurns: number | undefined }): Promise<TurnClaim> {
    const { ownerId, chatId, messageId, maxTurns } = request;
    const lockKey = this.lockKey(ownerId, chatId);
    const slotsKey = `${this.options.prefix}turns:${ownerId}`;
    const member = maxTurns === undefined ? '' : `${this.instanceId}|${messageId}`;
    const claim = (replaceable: string) =>
      this.script<[string, string?]>(
        CLAIM_TURN,
        [lockKey, slotsKey, `${this.options.prefix}fence`],
        [`${messageId}|${this.instanceId}`, this.options.leaseMs, maxTurns ?? 0, member, replaceable],
      );
    let [outcome, value] = await claim('');
    if (outcome === 'busy') {
      const holder = parseHolder(value!);
      // Held in this instance's name by no reply running here: left by its last run (it crashed
      // or lost Redis), whose replies it marked interrupted at start. Taken back at once.
      const leftover = holder.instanceId === this.instanceId && !this.replies?.find(ownerId, chatId, holder.messageId);
      if (!leftover) return { outcome, holder };
      [outcome, value] = await claim(value!);
      if (outcome === 'busy') return { outcome, holder: parseHolder(value!) };
    }
    if (outcome === 'limited') return { outcome };
    this.holdings.addLock(lockKey, value!);
    if (member) this.holdings.addSlot(member, slotsKey);
    return {
      outcome: 'claimed',
      release: () => {
        this.holdings.dropLock(lockKey);
        this.holdings.dropSlot(member);
        // If this fails (Redis is away), the lock lapses by itself within the lease.
        void runScript(this.connection, RELEASE_TURN, [lockKey, slotsKey], [value!, member]).catch(() => undefined);
      },
    };
  }

  async holderOf(ownerId: string, chatId: string): Promise<ReplyHolder | null> {
    try {
      const value = await this.connection.command<string | null>(['GET', this.lockKey(ownerId, chatId)]);
      return value ? parseHolder(value) : null;
    } catch (error) {
      throw coordinationUnavailable(error);
    }
  }

  follow(ownerId: string, chatId: string, holder: ReplyHolder): Promise<ReplyStream | undefined> {
    return this.followers.follow(ownerId, chatId, holder).catch((error: unknown) => {
      throw coordinationUnavailable(error);
    });
  }

  async cancel(ownerId: string, chatId: string, holder: ReplyHolder): Promise<MessageStatus | undefined> {
    const channel = replyChannel(this.options.prefix, holder.messageId);
    let settle!: (status: MessageStatus | undefined) => void;
    const outcome = new Promise<MessageStatus | undefined>((resolve) => (settle = resolve));
    const listener = (text: string) => {
      const message = parseJson<ReplyMessage>(text);
      if (message?.type === 'stored') settle(message.status);
      else if (message?.type === 'gone') settle(undefined);
    };
    try {
      await this.subscriber.subscribe(channel, listener);
    } catch (error) {
      throw coordinationUnavailable(error);
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const listening = await this.send(holder.instanceId, { type: 'cancel', ownerId, chatId, messageId: holder.messageId });
      // Nobody listens on that instance's channel: it is gone, and its reply is swept once its lease lapses.
      if (listening === 0) return undefined;
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new AppError('service_unavailable', 'The instance generating this reply did not confirm it stopped; retry.', { retryAfterSeconds: 1 })),
          this.options.cancelWaitMs,
        );
      });
      return await Promise.race([outcome, timeout]);
    } catch (error) {
      throw coordinationUnavailable(error);
    } finally {
      clearTimeout(timer);
      void this.subscriber.unsubscribe(channel, listener).catch(() => undefined);
    }
  }

  takeStreamSlot(ownerId: string, limit: number): Promise<(() => void) | null> {
    return this.takeSlot(`${this.options.prefix}streams:${ownerId}`, limit);
  }

  /** The same slots as claimTurn's: a turn and a slot taken here count against one limit. */
  takeTurnSlot(ownerId: string, limit: number): Promise<(() => void) | null> {
    return this.takeSlot(`${this.options.prefix}turns:${ownerId}`, limit);
  }

  private async takeSlot(key: string, limit: number): Promise<(() => void) | null> {
    const member = `${this.instanceId}|${randomUUID()}`;
    const taken = await this.script<number>(TAKE_SLOT, [key], [this.options.leaseMs, limit, member]);
    if (taken !== 1) return null;
    this.holdings.addSlot(member, key);
    return () => {
      if (!this.holdings.dropSlot(member)) return;
      void this.connection.command(['ZREM', key, member]).catch(() => undefined);
    };
  }

  serve(replies: LocalReplies): void {
    this.replies = replies;
    const channel = controlChannel(this.options.prefix, this.instanceId);
    const prefix = this.options.prefix;
    void this.subscriber
      .subscribe(channel, (text) => {
        const message = parseJson<ControlMessage>(text);
        if (!message) return;
        if (message.type === 'unwatch') {
          this.publisher.unwatch(message.messageId, message.from);
          return;
        }
        const generation = replies.find(message.ownerId, message.chatId, message.messageId);
        const replyAt = replyChannel(prefix, message.messageId);
        // Parts appended in this turn of the loop go out first: a reply that has just ended has
        // its last parts pending, which a `gone` sent before them would cut off for its followers.
        this.publisher.flush();
        if (message.type === 'watch') {
          if (generation?.isStarted) this.publisher.watch(generation, replyAt, message.from, message.snapshot);
          else this.publish(replyAt, { type: 'gone' });
          return;
        }
        if (!generation || generation.isEnded) {
          this.publish(replyAt, { type: 'gone' });
          return;
        }
        generation.abort('cancelled');
        void generation.finished.then(() => {
          this.publisher.flush();
          this.publish(replyAt, { type: 'stored', status: generation.status });
        });
      })
      // The subscription is made again by the client on every reconnection.
      .catch((error: unknown) => {
        if (!this.closed) this.options.log.warn({ err: error }, 'could not listen for requests from other instances yet');
      });
  }

  /**
   * Whether a running process serves under this instance's name (it listens on the name's
   * channel), once Redis answers within `waitMs`; undefined when it does not.
   */
  async nameInUse(waitMs: number): Promise<boolean | undefined> {
    const deadline = Date.now() + waitMs;
    while (!this.connection.isReady && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    try {
      const channel = controlChannel(this.options.prefix, this.instanceId);
      const [, listeners] = await this.connection.command<[string, number]>(['PUBSUB', 'NUMSUB', channel]);
      return listeners > 0;
    } catch {
      return undefined;
    }
  }

  async ping(): Promise<void> {
    try {
      if (!this.subscriber.isReady) throw new Error('the subscriber connection is not ready');
      await this.connection.command(['PING']);
    } catch (error) {
      throw coordinationUnavailable(error);
    }
  }

  /** Publishes what is pending and closes the connections; what this instance holds lapses with its lease. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.publisher.flush();
    this.followers.close();
    await Promise.all([this.connection.close(), this.subscriber.close()]);
  }

  private lockKey(ownerId: string, chatId: string): string {
    return `${this.options.prefix}chat:${ownerId}:${chatId}`;
  }

  private async script<T>(script: string, keys: string[], args: Array<string | number>): Promise<T> {
    try {
      return await runScript<T>(this.connection, script, keys, args);
    } catch (error) {
      throw coordinationUnavailable(error);
    }
  }

  private send(instanceId: string, message: ControlMessage): Promise<number> {
    return this.connection.publish(controlChannel(this.options.prefix, instanceId), JSON.stringify(message));
  }

  private publish(channel: string, message: ReplyMessage): void {
    // While Redis is away, followers hear nothing; they ask again, or give up, by themselves.
    void this.connection.publish(channel, JSON.stringify(message)).catch(() => undefined);
  }
}

/** "token|messageId|instanceId": the instance id may itself hold "|". */
function parseHolder(value: string): ReplyHolder {
  const first = value.indexOf('|');
  const second = value.indexOf('|', first + 1);
  return { messageId: value.slice(first + 1, second), instanceId: value.slice(second + 1) };
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}
