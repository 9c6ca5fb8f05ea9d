import type { z } from 'zod';
import { AppError } from '../errors/app-error';

/**
 * `input` validated by `schema`.
 * @throws AppError invalid_request, with one `{ path, message }` per problem as details.
 */
export function parseInput<Schema extends z.ZodType>(schema: Schema, input: unknown, what: string): z.infer<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
  throw new AppError('invalid_request', `Invalid ${what}.`, { details });
}
