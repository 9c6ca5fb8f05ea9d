/** Message columns written alike by the Prisma store and the SQLite statements. */
import { randomUUID } from 'node:crypto';
import type { FinishedReply, NewTurn } from '../chat/ports';

/** The Message rows of a turn's new messages, in order (the reply's row is opened apart). */
export function newMessageRows(turn: NewTurn) {
  return turn.messages.map((message) => ({
    id: randomUUID(),
    ownerId: turn.ownerId,
    chatId: turn.chatId,
    role: message.role,
    content: message.content,
    status: 'completed',
    tokenCount: message.tokenCount,
  }));
}

/** The Message columns a finished reply sets. */
export function finishedReplyColumns(reply: FinishedReply) {
  return {
    content: reply.content,
    status: reply.status,
    finishReason: reply.finishReason,
    tokenCount: reply.tokenCount,
    promptTokens: reply.usage.promptTokens,
    completionTokens: reply.usage.completionTokens,
    totalTokens: reply.usage.totalTokens,
    usageEstimated: reply.usageEstimated,
    timeToFirstTokenMs: reply.timeToFirstTokenMs,
    durationMs: reply.durationMs,
  };
}
