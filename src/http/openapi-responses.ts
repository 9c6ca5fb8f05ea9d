import { z } from 'zod';
import type { ZodOpenApiResponseObject, ZodOpenApiResponsesObject } from 'zod-openapi';
import { STATUS_BY_CODE, type ErrorCode } from '../errors/app-error';
import { toOpenAiErrorBody } from './openai-errors';
import { openAiErrorBodySchema } from './openai-response-schemas';
import { errorBodySchema } from './response-schemas';

/** Building blocks of the OpenAPI document: headers every answer carries, and error answers. */

const requestIdHeader = z.string().meta({
  description: 'The request id: the one the request sent, when it is 1 to 128 letters, digits, `_`, `.`, `:` or `-`; else a new one.',
  header: { id: 'X-Request-Id' },
});

/** Accepted on every request; an id of another form is replaced, never refused. */
export const requestIdParameter = z.string().optional().meta({
  description: 'An id for this request, echoed in the response and written on every log line of it (1 to 128 letters, digits, `_`, `.`, `:` or `-`).',
  param: { id: 'X-Request-Id' },
});

const retryAfterHeader = z.number().int().min(1).optional().meta({
  description: 'Seconds to wait before retrying, when known.',
  header: { id: 'Retry-After' },
});

/** The headers of an answer with `status`: X-Request-Id always, Retry-After on 429 and 503. */
export function responseHeaders(status: number) {
  return status === 429 || status === 503
    ? z.object({ 'X-Request-Id': requestIdHeader, 'Retry-After': retryAfterHeader })
    : z.object({ 'X-Request-Id': requestIdHeader });
}

/** A successful answer with a body (`content`), or none. */
export function success(status: number, description: string, content?: ZodOpenApiResponseObject['content']): ZodOpenApiResponseObject {
  return { description, headers: responseHeaders(status), ...(content ? { content } : {}) };
}

export function json(schema: z.ZodType): ZodOpenApiResponseObject['content'] {
  return { 'application/json': { schema } };
}

/** How errors are answered: the service's `{ error: { code, message, details? } }`, or OpenAI's shape (/v1). */
export type ErrorShape = 'service' | 'openai';

/**
 * The error answers of an operation that can fail with `codes`, one per status, each listing the
 * codes it can carry. On /v1 each code is shown with the `code` OpenAI's shape gives it
 * (toOpenAiErrorBody); `openAiCodes` names the codes some of them carry instead (model_not_found…).
 */
export function errorResponses(codes: readonly ErrorCode[], shape: ErrorShape, openAiCodes: Record<string, string> = {}): ZodOpenApiResponsesObject {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) byStatus.set(STATUS_BY_CODE[code], [...(byStatus.get(STATUS_BY_CODE[code]) ?? []), code]);
  const responses: ZodOpenApiResponsesObject = {};
  for (const [status, atStatus] of [...byStatus].sort(([a], [b]) => a - b)) {
    const named = atStatus.map((code) => `\`${code}\``).join(', ');
    responses[`${status}` as `4${string}`] =
      shape === 'service'
        ? { description: named, headers: responseHeaders(status), content: json(errorBodySchema(atStatus)) }
        : { description: openAiDescription(status, atStatus, openAiCodes), headers: responseHeaders(status), content: json(openAiErrorBodySchema) };
  }
  return responses;
}

/** Which of the service's codes an OpenAI-shaped error at `status` stands for, and its `type` and `code` there. */
function openAiDescription(status: number, codes: ErrorCode[], openAiCodes: Record<string, string>): string {
  const lines = codes.map((code) => {
    const { type, code: openAiCode } = toOpenAiErrorBody({ error: { code, message: '' } }, status).error;
    const alternative = openAiCodes[code] ? ` or \`${openAiCodes[code]}\`` : '';
    return `- ${code}: \`type\` \`${type}\`, \`code\` \`${openAiCode}\`${alternative}`;
  });
  return `OpenAI's error shape. The service's error codes it stands for:\n\n${lines.join('\n')}`;
}
