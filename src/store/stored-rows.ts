/**
 * Rows as both engines read and write them: the column lists, what a turn and a finished reply
 * write, and the mapping from a row to the chat layer's types. Each engine's statements differ
 * only in their SQL dialect and in how a driver returns timestamps and booleans (SQLite: text and
 * 0/1; PostgreSQL: Date and boolean), which `toStoredMessage` and `toChatSummary` absorb.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../errors/app-error';
import type { ChatSummary, FinishedReply, FinishReason, MessageStatus, NewTurn, Rewind, Role, StoredMessage } from '../chat/ports';

/** The Message columns a StoredMessage is read from, in SELECT order; its id is the one the API shows. */
export const MESSAGE_COLUMNS = `COALESCE("clientId", "id") AS "id", "role", "content", "status", "finishReason", "createdAt", "tokenCount", "promptTokens",
  "completionTokens", "totalTokens", "usageEstimated", "model", "timeToFirstTokenMs", "durationMs", "systemPromptHash"`;

/** The Chat columns a ChatSummary is read from. */
export const CHAT_COLUMNS = `"id", "title", "systemPrompt", "createdAt", "updatedAt", "messageCount", "lastReplyStatus"`;

export interface MessageRow extends Omit<StoredMessage, 'role' | 'status' | 'finishReason' | 'createdAt' | 'usageEstimated'> {
  role: string;
  status: string;
  finishReason: string | null;
  createdAt: string | Date;
  usageEstimated: number | boolean;
}

export interface ChatRow {
  id: string;
  title: string | null;
  systemPrompt: string | null;
  createdAt: string | Date;
  updatedAt: string | Date;
  messageCount: number;
  lastReplyStatus: string | null;
}

/** What a turn writes, whoever worked out its reply's prompt hash. */
export type TurnRows = Omit<NewTurn, 'reply'> & { reply: Omit<NewTurn['reply'], 'systemPromptHash'> };

/**
 * One row to insert for each message of a turn, in order: the new messages, then the reply, opened
 * `streaming` with `systemPromptHash` (null: the statement works it out).
 */
export function turnMessageRows(turn: TurnRows, systemPromptHash: string | null) {
  const { ownerId, chatId, reply } = turn;
  const rows = turn.messages.map((message) => ({
    id: randomUUID() as string,
    clientId: (message.clientId ?? null) as string | null,
    ownerId,
    chatId,
    role: message.role as string,
    content: message.content,
    status: 'completed' as MessageStatus,
    tokenCount: message.tokenCount as number | null,
    model: null as string | null,
    systemPromptHash: null as string | null,
    instanceId: null as string | null,
  }));
  rows.push({
    id: reply.id,
    clientId: null,
    ownerId,
    chatId,
    role: 'assistant',
    content: '',
    status: 'streaming',
    tokenCount: null,
    model: reply.model,
    systemPromptHash,
    instanceId: reply.instanceId,
  });
  return rows;
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

export function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    ...row,
    role: row.role as Role,
    status: row.status as MessageStatus,
    finishReason: row.finishReason as FinishReason | null,
    createdAt: new Date(row.createdAt),
    usageEstimated: row.usageEstimated === true || row.usageEstimated === 1,
  };
}

export function toChatSummary(row: ChatRow): ChatSummary {
  return {
    chatId: row.id,
    title: row.title,
    systemPrompt: row.systemPrompt,
    createdAt: new Date(row.createdAt),
    updatedAt: new Date(row.updatedAt),
    messageCount: Number(row.messageCount),
    lastReplyStatus: row.lastReplyStatus as MessageStatus | null,
  };
}

/**
 * Which messages a rewind (see Rewind) removes, given the message it names, or the chat's newest
 * one when it names none: that message and those after it (`inclusive`), or those after it only.
 * Undefined: nothing (a chat with no message).
 * @throws AppError invalid_request: a named message the chat does not have, or an edit of a reply.
 */
export function rewoundMessages<Seq>(change: Rewind, target: { seq: Seq; role: string } | undefined): { seq: Seq; inclusive: boolean } | undefined {
  if (!target) {
    if (change.messageId !== undefined) throw unknownMessage(change.messageId);
    return undefined;
  }
  if (change.type === 'edit' && target.role !== 'user') throw notUserMessage(change.messageId);
  // A regenerated reply goes with what follows it; an edited or regenerated-from question stays.
  return { seq: target.seq, inclusive: change.type === 'regenerate' && target.role === 'assistant' };
}

/** A new message whose id the chat already has. */
export function clientIdTaken(messageId: string): AppError {
  return new AppError('message_id_conflict', `This chat already has a message with id "${messageId}"; to change it, send its id as messageId.`);
}

export function unknownMessage(messageId: string): AppError {
  return new AppError('invalid_request', `messageId "${messageId}" is not the id of a message of this chat.`);
}

export function notUserMessage(messageId: string): AppError {
  return new AppError('invalid_request', `messageId "${messageId}" is not a user message: only the user's messages can be edited.`);
}
