import type { ReplyHolder } from '../chat/cluster';
import type { ReplyStream } from '../chat/reply-stream';
import { RemoteReply } from './remote-reply';
import type { ControlMessage, ReplyMessage } from './reply-messages';

type Listener = (message: string) => void;

export interface ReplyFollowersOptions {
  instanceId: string;
  leaseMs: number;
  subscribe: (channel: string, listener: Listener) => Promise<void>;
  unsubscribe: (channel: string, listener: Listener) => Promise<void>;
  /** Sends a request to the instance generating a reply; resolves to how many instances heard it. */
  ask: (holder: ReplyHolder, message: ControlMessage) => Promise<number>;
  channelOf: (messageId: string) => string;
}

interface Followed {
  reply: RemoteReply;
  holder: ReplyHolder;
  ownerId: string;
  channel: string;
  listener: Listener;
  /** Resolves true once the first parts came, false if the reply was not streaming there. */
  first: Promise<boolean>;
  createdAt: number;
}

/** How long a first answer from the instance generating a reply is waited for. */
const FIRST_ANSWER_MS = 3000;

/**
 * The replies of other instances that this instance's readers follow: one copy per reply,
 * whatever the number of readers, fed from the reply's channel. Each copy renews its interest
 * every third of the lease; a copy that hears nothing, not even a sign of life, for a whole lease
 * ends with an error part, since its instance is gone.
 */
export class ReplyFollowers {
  private readonly followed = new Map<string, Followed>();

  constructor(private readonly options: ReplyFollowersOptions) {}

  /** The reply's copy here, once it has its first parts; undefined when it is not streaming there. */
  async follow(ownerId: string, chatId: string, holder: ReplyHolder): Promise<ReplyStream | undefined> {
    const existing = this.followed.get(holder.messageId);
    if (existing && !existing.reply.isEnded) return (await existing.first) ? existing.reply : undefined;
    const channel = this.options.channelOf(holder.messageId);
    let answered!: (streaming: boolean) => void;
    const first = new Promise<boolean>((resolve) => (answered = resolve));
    const followed: Followed = {
      reply: new RemoteReply(chatId, holder.messageId, () => this.stop(followed)),
      holder,
      ownerId,
      channel,
      listener: (text) => this.receive(followed, text, answered),
      first,
      createdAt: Date.now(),
    };
    this.followed.set(holder.messageId, followed);
    try {
      await this.options.subscribe(channel, followed.listener);
      const heard = await this.watch(followed, true);
      if (heard === 0) answered(false);
    } catch (error) {
      this.stop(followed);
      throw error;
    }
    const timer = setTimeout(() => answered(false), FIRST_ANSWER_MS);
    const streaming = await first;
    clearTimeout(timer);
    if (!streaming) {
      this.stop(followed);
      return undefined;
    }
    return followed.reply;
  }

  /** After a reconnection to Redis: messages may have been missed, so each copy asks for a snapshot. */
  resync(): void {
    for (const followed of this.followed.values()) void this.watch(followed, true).catch(() => undefined);
  }

  /** Every third of the lease: renews interest, and gives up on copies whose instance went silent. */
  keepAlive(): void {
    const now = Date.now();
    for (const followed of this.followed.values()) {
      const { reply } = followed;
      if (now - reply.lastHeard > this.options.leaseMs) {
        reply.fail('The instance generating this reply stopped; the reply was interrupted. Its stored part is in the chat history.');
        this.stop(followed);
      } else if (!reply.everRead && now - followed.createdAt > this.options.leaseMs) {
        // Followed for a request that never read it (refused after the lookup, say).
        this.stop(followed);
      } else {
        void this.watch(followed, false).catch(() => undefined);
      }
    }
  }

  close(): void {
    for (const followed of this.followed.values()) this.stop(followed);
  }

  private receive(followed: Followed, text: string, answered: (streaming: boolean) => void): void {
    let message: ReplyMessage;
    try {
      message = JSON.parse(text) as ReplyMessage;
    } catch {
      return;
    }
    const { reply } = followed;
    if (message.type === 'parts') {
      answered(true);
      // A gap: parts were missed (Redis was away); a snapshot fills it.
      if (!reply.receive(message.entries)) void this.watch(followed, true).catch(() => undefined);
      if (reply.isEnded) this.stop(followed);
    } else if (message.type === 'alive') {
      reply.lastHeard = Date.now();
    } else if (message.type === 'gone') {
      answered(false);
      if (reply.lastId > 0) {
        reply.fail('The reply ended while this copy of it had missed its end; its stored version is in the chat history.');
        this.stop(followed);
      }
    }
  }

  private watch(followed: Followed, snapshot: boolean): Promise<number> {
    const { holder, ownerId, reply } = followed;
    return this.options.ask(holder, {
      type: 'watch',
      from: this.options.instanceId,
      ownerId,
      chatId: reply.chatId,
      messageId: holder.messageId,
      snapshot,
    });
  }

  private stop(followed: Followed): void {
    if (this.followed.get(followed.holder.messageId) !== followed) return;
    this.followed.delete(followed.holder.messageId);
    void this.options.unsubscribe(followed.channel, followed.listener).catch(() => undefined);
    if (!followed.reply.isEnded) {
      void this.options
        .ask(followed.holder, { type: 'unwatch', from: this.options.instanceId, messageId: followed.holder.messageId })
        .catch(() => undefined);
    }
  }
}
