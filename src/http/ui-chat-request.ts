import { z } from 'zod';
import type { TurnRequest } from '../chat/chat-service';
import { idSchema, storableText, type ShapeLimits } from './chat-request-schema';

/**
 * The body the AI SDK's `useChat` sends with its default transport (DefaultChatTransport):
 * `{ id, messages: UIMessage[], trigger, messageId?, ...fields the app adds }`. The service owns
 * the history, so of the client's copy only the last message (the new or edited question) and the
 * system messages (the chat's prompt) are read; the others are not even validated, whatever their
 * ids or parts (tool calls, files, reasoning), since they are never used.
 */
export function uiChatRequestSchema(limits: ShapeLimits) {
  const content = (name: string) =>
    z
      .string()
      .min(1, `${name} must not be empty`)
      .max(limits.maxCharacters, `${name} must be at most ${limits.maxCharacters} characters`)
      .pipe(storableText(name));
  // Only text can be stored for now: any other part is refused rather than dropped.
  const textParts = z
    .array(
      z.looseObject({ type: z.string() }).check((context) => {
        if (context.value.type !== 'text') {
          context.issues.push({ code: 'custom', input: context.value, path: ['type'], message: `only text parts are supported, not "${context.value.type}"` });
        } else if (typeof context.value.text !== 'string') {
          context.issues.push({ code: 'custom', input: context.value, path: ['text'], message: 'a text part needs its text' });
        }
      }),
    )
    .transform((parts) => parts.map((part) => part.text as string).join(''));
  const readMessage = z.looseObject({
    id: idSchema('id'),
    role: z.enum(['system', 'user', 'assistant']),
    parts: textParts,
  });
  // What every message must at least look like, to find the system ones and the last one.
  const anyMessage = z.looseObject({ role: z.unknown() });

  return z
    .looseObject({
      id: idSchema('id'),
      trigger: z.enum(['submit-message', 'regenerate-message']).default('submit-message'),
      messageId: idSchema('messageId').optional(),
      // A regeneration may come with none (the client removed them all).
      messages: z.array(anyMessage),
    })
    .transform((body, context) => {
      const prompts: string[] = [];
      for (const [index, message] of body.messages.entries()) {
        if (message.role !== 'system') continue;
        const parsed = readMessage.safeParse(message);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) context.issues.push({ ...issue, path: ['messages', index, ...issue.path] } as never);
          continue;
        }
        const prompt = content('system prompt').safeParse(parsed.data.parts);
        if (!prompt.success) context.issues.push({ code: 'custom', input: message, path: ['messages', index, 'parts'], message: prompt.error.issues[0]!.message });
        else prompts.push(prompt.data);
      }
      // The latest system message becomes the chat's prompt, as with `{ chatId, messages }`.
      const system = prompts.length > 0 ? [{ role: 'system' as const, content: prompts.at(-1)! }] : [];
      const turn: TurnRequest = { chatId: body.id, ownerId: '', messages: system };
      if (body.trigger === 'regenerate-message') return { ...turn, rewind: { type: 'regenerate' as const, messageId: body.messageId } };

      const lastIndex = body.messages.length - 1;
      if (lastIndex < 0) {
        context.issues.push({ code: 'custom', input: body, path: ['messages'], message: 'messages must not be empty' });
        return z.NEVER;
      }
      const parsed = readMessage.safeParse(body.messages[lastIndex]);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) context.issues.push({ ...issue, path: ['messages', lastIndex, ...issue.path] } as never);
        return z.NEVER;
      }
      const last = parsed.data;
      const fail = (path: Array<string | number>, message: string) => {
        context.issues.push({ code: 'custom', input: body, path, message });
        return z.NEVER;
      };
      if (last.role !== 'user') return fail(['messages', lastIndex, 'role'], 'the last message must be the user message to answer');
      const text = content('the message').safeParse(last.parts);
      if (!text.success) return fail(['messages', lastIndex, 'parts'], text.error.issues[0]!.message);
      if (body.messageId === undefined) return { ...turn, messages: [...system, { role: 'user' as const, content: text.data, clientId: last.id }] };
      // An edit: the client replaced message `messageId` and dropped what followed; the last message is it.
      if (last.id !== body.messageId) return fail(['messageId'], 'messageId must be the id of the last message, the edited one');
      return { ...turn, rewind: { type: 'edit' as const, messageId: body.messageId, content: text.data } };
    });
}

/**
 * Whether a POST /api/chat body is the AI SDK's (`id`, `trigger`, messages with `parts`) rather
 * than `{ chatId, messages }`, so that its errors speak of the fields it has.
 */
export function isUiChatRequest(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || 'chatId' in body) return false;
  if ('id' in body || 'trigger' in body) return true;
  const { messages } = body as { messages?: unknown };
  return Array.isArray(messages) && messages.some((message) => typeof message === 'object' && message !== null && 'parts' in message);
}
