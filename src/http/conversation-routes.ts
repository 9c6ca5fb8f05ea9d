import { Router } from 'express';
import type { Conversations } from '../chat/conversations';
import type { ChatSummary, StoredMessage } from '../chat/ports';
import { AppError } from '../errors/app-error';
import { ownerOf } from './authenticate';
import { chatIdSchema, chatListQuerySchema, chatUpdateSchema, messageListQuerySchema } from './chat-request-schema';
import { methodNotAllowed } from './error-handler';
import { parseInput } from './parse-input';
import type { ChatJson, MessageJson, UiMessageJson } from './response-schemas';

/** The conversations API: list, read, rename and delete chats; page through their messages. */
export function conversationRoutes(conversations: Conversations): Router {
  const router = Router();

  router.get('/api/chats', async (request, response) => {
    const query = parseInput(chatListQuerySchema, request.query, 'query');
    const page = await conversations.list(ownerOf(response), query.limit, query.cursor);
    response.json({ chats: page.chats.map(({ systemPrompt: _prompt, ...chat }) => chatJson(chat)), nextCursor: page.nextCursor });
  });
  router.all('/api/chats', methodNotAllowed(['GET']));

  router.get('/api/chats/:chatId', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    response.json(chatJson(await conversations.get(chatId, ownerOf(response))));
  });

  router.patch('/api/chats/:chatId', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    if (!request.is('application/json')) {
      throw new AppError('unsupported_media_type', 'Send the request body as JSON with Content-Type: application/json.');
    }
    const changes = parseInput(chatUpdateSchema, request.body, 'chat update');
    response.json(chatJson(await conversations.update(chatId, ownerOf(response), changes)));
  });

  router.delete('/api/chats/:chatId', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    await conversations.delete(chatId, ownerOf(response));
    response.status(204).end();
  });
  router.all('/api/chats/:chatId', methodNotAllowed(['GET', 'PATCH', 'DELETE']));

  router.get('/api/chats/:chatId/messages', async (request, response) => {
    const chatId = parseInput(chatIdSchema, request.params.chatId, 'chat id');
    const query = parseInput(messageListQuerySchema, request.query, 'query');
    const page = await conversations.messages(chatId, ownerOf(response), query.limit, query.before);
    if (query.format === 'ui') {
      // A reply still streaming is left out: useChat({ resume: true }) brings it, from its start.
      const messages = page.messages.filter((message) => message.status !== 'streaming').map(uiMessageJson);
      response.json({ chatId, messages });
      return;
    }
    response.json({ chatId, messages: page.messages.map(messageJson), nextBefore: page.nextBefore });
  });
  router.all('/api/chats/:chatId/messages', methodNotAllowed(['GET']));

  return router;
}

function chatJson(chat: Omit<ChatSummary, 'systemPrompt'> & { systemPrompt?: string | null }): ChatJson {
  return {
    chatId: chat.chatId,
    title: chat.title,
    ...(chat.systemPrompt === undefined ? {} : { systemPrompt: chat.systemPrompt }),
    createdAt: chat.createdAt.toISOString(),
    updatedAt: chat.updatedAt.toISOString(),
    messageCount: chat.messageCount,
    lastReplyStatus: chat.lastReplyStatus,
  };
}

function messageJson(message: StoredMessage): MessageJson {
  return {
    id: message.id,
    role: message.role,
    content: message.content,
    status: message.status,
    finishReason: message.finishReason,
    createdAt: message.createdAt.toISOString(),
    usage: usageJson(message),
    usageEstimated: message.usageEstimated,
    model: message.model,
    timeToFirstTokenMs: message.timeToFirstTokenMs,
    durationMs: message.durationMs,
    systemPromptHash: message.systemPromptHash,
  };
}

/** The three counts are stored together: all set, or (user messages) all null. */
function usageJson({ promptTokens, completionTokens, totalTokens }: StoredMessage): MessageJson['usage'] {
  return promptTokens === null || completionTokens === null || totalTokens === null ? null : { promptTokens, completionTokens, totalTokens };
}

/** A message as the AI SDK's UIMessage, ready for useChat({ messages }); what else is known goes in `metadata`. */
function uiMessageJson(message: StoredMessage): UiMessageJson {
  const { id, role, content, ...rest } = messageJson(message);
  return { id, role, parts: content === '' ? [] : [{ type: 'text' as const, text: content }], metadata: rest };
}
