import { z } from 'zod';
import type { ZodOpenApiOperationObject, ZodOpenApiPathsObject } from 'zod-openapi';
import type { ErrorCode } from '../errors/app-error';
import type { PathContext } from './openapi-chat-paths';
import { errorResponses, json, requestIdParameter, success } from './openapi-responses';
import { completionChunkSchema, completionSchema, modelListSchema, modelSchema, openAiErrorBodySchema } from './openai-response-schemas';
import { completionRequestSchema, type CompletionLimits } from './openai-request-schema';

/** The `code` some errors carry in OpenAI's shape instead of the usual one (see openai-errors.ts). */
const OPENAI_CODES = { invalid_request: 'unsupported_parameter', not_found: 'model_not_found' };

const COMPLETION_CODES: ErrorCode[] = [
  'invalid_json',
  'payload_too_large',
  'unsupported_media_type',
  'not_found',
  'context_length_exceeded',
  'content_filtered',
  'upstream_rate_limited',
  'upstream_error',
  'upstream_timeout',
  'service_unavailable',
  'internal_error',
];

const STREAM_FRAMING =
  'With `stream: true`: an SSE stream of `data: <chunk as JSON>` events ending with `data: [DONE]`. A failure after the stream ' +
  'started is sent as one `data: {"error": …}` event (OpenAI\'s error shape), with no `[DONE]`.';

/** The OpenAI-compatible routes under /v1; their errors are in OpenAI's shape. */
export function openAiPaths(context: PathContext, limits: CompletionLimits): ZodOpenApiPathsObject {
  const operation = (spec: Omit<ZodOpenApiOperationObject, 'responses'> & { codes: ErrorCode[]; ok: ZodOpenApiOperationObject['responses'] }) => {
    const { codes, ok, requestParams, ...rest } = spec;
    return {
      tags: ['OpenAI-compatible'],
      security: context.security,
      ...rest,
      requestParams: { ...requestParams, header: z.object({ 'X-Request-Id': requestIdParameter }) },
      responses: { ...ok, ...errorResponses(['invalid_request', ...context.gateCodes, ...codes], 'openai', OPENAI_CODES) },
    } satisfies ZodOpenApiOperationObject;
  };
  return {
    '/v1/chat/completions': {
      post: operation({
        summary: 'Create a chat completion (stateless, nothing is stored)',
        requestBody: { required: true, content: { 'application/json': { schema: completionRequestSchema(limits) } } },
        ok: {
          '200': success(200, `The completion, or with \`stream: true\` its chunks. ${STREAM_FRAMING}`, {
            'application/json': { schema: completionSchema },
            'text/event-stream': { schema: z.union([completionChunkSchema, openAiErrorBodySchema]) },
          }),
        },
        codes: COMPLETION_CODES,
      }),
    },
    '/v1/models': {
      get: operation({ summary: 'The model this service serves', ok: { '200': success(200, 'A list of one model.', json(modelListSchema)) }, codes: [] }),
    },
    '/v1/models/{model}': {
      get: operation({
        summary: 'A model',
        requestParams: { path: z.object({ model: z.string() }) },
        ok: { '200': success(200, 'The model.', json(modelSchema)) },
        codes: ['not_found'],
      }),
    },
  };
}
