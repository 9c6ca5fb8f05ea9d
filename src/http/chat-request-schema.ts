import { z } from 'zod';

export interface ShapeLimits {
  maxMessages: number;
  maxCharacters: number;
}

/**
 * Text the service stores: PostgreSQL's `text` cannot hold U+0000 (SQLite can), so it is refused
 * on every engine alike, rather than answered with a 500 on one of them.
 */
export function storableText(name: string) {
  return z.string().refine((text) => !text.includes('\u0000'), `${name} must not contain the NUL character (U+0000)`);
}

/**
 * Chat and message ids: UUIDs, the AI SDK's generated ids (16 alphanumerics by default) and any
 * other id a client picks within this set, which is safe in a path, a query and a log line.
 */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** An id named `name`; "is required" when absent, so the caller is not sent looking at a value. */
export function idSchema(name: string) {
  const invalid = `${name} must be 1 to 128 letters, digits, "_" or "-"`;
  return z.string({ error: (issue) => (issue.input === undefined ? `${name} is required` : invalid) }).regex(ID_PATTERN, invalid);
}

/** The body of POST /api/chat, within the configured size limits. */
export function chatRequestSchema(limits: ShapeLimits) {
  return z.object({
    chatId: idSchema('chatId'),
    messages: z
      .array(
        z.strictObject({
          role: z.enum(['system', 'user', 'assistant']),
          content: z
            .string()
            .min(1, 'content must not be empty')
            .max(limits.maxCharacters, `content must be at most ${limits.maxCharacters} characters`)
            .pipe(storableText('content')),
        }),
      )
      .min(1, 'messages must not be empty')
      .max(limits.maxMessages, `at most ${limits.maxMessages} messages per request`)
      // An empty list has its own message above; this one is for a list of system messages only.
      .refine((messages) => messages.length === 0 || messages.some((message) => message.role !== 'system'), {
        error: 'messages must contain at least one user or assistant message',
      }),
  });
}

export const chatIdSchema = idSchema('chatId');

/** An absent header means "from the start". */
export const lastEventIdSchema = z
  .string()
  .regex(/^\d{1,15}$/, 'Last-Event-ID must be the id of an event of this stream')
  .transform(Number)
  .optional()
  .transform((value) => value ?? 0);

/** A page size from the query string: `fallback` when absent. */
export function pageLimit(fallback: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, 'limit must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(1).max(max))
    .optional()
    .transform((value) => value ?? fallback)
    .meta({ description: `A whole number from 1 to ${max}; ${fallback} when absent.` });
}

export const chatListQuerySchema = z.object({
  limit: pageLimit(20, 100),
  cursor: z.string().min(1).max(200).optional(),
});

export const messageListQuerySchema = z.object({
  limit: pageLimit(100, 500),
  before: idSchema('before').optional(),
  /** `ui`: the AI SDK's UIMessage shape. */
  format: z.enum(['ui'], { error: 'format must be "ui", or absent' }).optional(),
});

export const chatUpdateSchema = z
  .strictObject({
    title: z.string().trim().min(1, 'title must not be empty').max(200).pipe(storableText('title')),
    systemPrompt: storableText('systemPrompt').nullable(),
  })
  .partial()
  .refine((changes) => changes.title !== undefined || changes.systemPrompt !== undefined, {
    error: 'send title and/or systemPrompt',
  });
