import { z } from 'zod';

export const chatRequestSchema = z.object({
  chatId: z.uuid({ error: 'chatId must be a UUID' }),
  messages: z
    .array(
      z.strictObject({
        role: z.enum(['system', 'user', 'assistant']),
        content: z.string().min(1, 'content must not be empty'),
      }),
    )
    .min(1, 'messages must not be empty')
    .refine((messages) => messages.some((message) => message.role !== 'system'), {
      error: 'messages must contain at least one user or assistant message',
    }),
});

export const chatIdSchema = z.uuid({ error: 'chatId must be a UUID' });

/** An absent header means "from the start". */
export const lastEventIdSchema = z
  .string()
  .regex(/^\d{1,15}$/, 'Last-Event-ID must be the id of an event of this stream')
  .transform(Number)
  .optional()
  .transform((value) => value ?? 0);
