import type { MessageStatus } from '../chat/ports';
import type { UiMessagePart } from '../chat/ui-message-part';

/**
 * The messages instances exchange over Redis pub/sub. Requests go to the channel of the instance
 * generating a reply; what it sends back goes to the reply's own channel, which every instance
 * following the reply listens to.
 */
export type ControlMessage =
  /** Send me the parts so far, then the rest as they come (`snapshot` false: just keep sending). */
  | { type: 'watch'; from: string; ownerId: string; chatId: string; messageId: string; snapshot: boolean }
  /** I no longer follow this reply. */
  | { type: 'unwatch'; from: string; messageId: string }
  | { type: 'cancel'; ownerId: string; chatId: string; messageId: string };

export type ReplyMessage =
  /** Parts by id, in order; a snapshot starts at id 1. */
  | { type: 'parts'; entries: Array<[id: number, part: UiMessagePart]> }
  /** Nothing new, but the instance generating the reply is alive. */
  | { type: 'alive' }
  /** The reply is not generating here (ended, or not started). */
  | { type: 'gone' }
  /** A cancelled reply is stored, with this status. */
  | { type: 'stored'; status: MessageStatus };

export function controlChannel(prefix: string, instanceId: string): string {
  return `${prefix}instance:${instanceId}`;
}

export function replyChannel(prefix: string, messageId: string): string {
  return `${prefix}reply:${messageId}`;
}
