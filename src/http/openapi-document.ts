import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createDocument, type oas31, type ZodOpenApiComponentsObject } from 'zod-openapi';
import type { Config } from '../config/config-schema';
import { messageLimits, replyTokenLimit } from '../config/load-config';
import type { ErrorCode } from '../errors/app-error';
import { chatPaths, type PathContext } from './openapi-chat-paths';
import { openAiPaths } from './openapi-openai-paths';
import { servicePaths } from './openapi-service-paths';
import { errorBodySchema } from './response-schemas';

/** What the routes of one app depend on: the document describes exactly the routes it registers. */
export interface ApiDescriptionOptions {
  config: Config;
  /** API keys are required (`[auth] enabled`). */
  auth: boolean;
  /** End users' JWTs are accepted beside API keys. */
  jwt: boolean;
  /** The chat page is served at `/`. */
  webPage: boolean;
  /** GET /metrics is served. */
  metrics: boolean;
}

/** package.json, from src/http or dist/http alike. */
const VERSION = (JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

const DESCRIPTION = [
  'Streams LLM chat replies over Server-Sent Events in the AI SDK UI message stream protocol (v1), keeps each conversation, ',
  'and serves an OpenAI-compatible API under `/v1`.\n\n',
  'Every response carries `X-Request-Id`. Errors under `/api` are `{ "error": { "code", "message", "details"? } }`; ',
  'under `/v1` they are in OpenAI\'s shape. A request Node cannot parse gets `400 invalid_request`, ',
  'and one whose headers are too large `431 headers_too_large`, on any path.',
].join('');

/**
 * The OpenAPI 3.1 document of an app built with `options`, from the zod schemas its routes
 * validate requests with and build answers from. Built once per app, when first asked for.
 */
export function buildOpenApiDocument(options: ApiDescriptionOptions): oas31.OpenAPIObject {
  const { config, auth, jwt } = options;
  const context: PathContext = {
    security: auth ? [{ apiKey: [] }, ...(jwt ? [{ jwt: [] }] : [])] : [],
    gateCodes: auth ? ['unauthorized', 'rate_limited', ...(jwt ? (['service_unavailable'] satisfies ErrorCode[]) : [])] : [],
    limits: messageLimits(config),
  };
  const completionLimits = { ...context.limits, maxTokens: replyTokenLimit(config) };
  const metrics = options.metrics ? { token: config.metrics.token !== '' } : undefined;
  return createDocument({
    openapi: '3.1.0',
    info: { title: 'LLM Streaming Service', version: VERSION, description: DESCRIPTION },
    tags: [
      { name: 'Chat', description: 'Turns streamed as AI SDK UI message streams; resume and cancel.' },
      { name: 'Conversations', description: 'Stored chats and their messages.' },
      { name: 'OpenAI-compatible', description: 'OpenAI\'s chat completions and models API (stateless).' },
      { name: 'Service', description: 'Health, the chat page and this reference: no API key needed.' },
      ...(metrics ? [{ name: 'Metrics', description: 'For Prometheus.' }] : []),
    ],
    paths: {
      ...chatPaths(context),
      ...openAiPaths(context, completionLimits),
      ...servicePaths({ webPage: options.webPage, metrics }),
    },
    components: {
      schemas: { Error: errorBodySchema() },
      securitySchemes: securitySchemes(options),
    },
  });
}

function securitySchemes({ auth, jwt, metrics }: ApiDescriptionOptions): ZodOpenApiComponentsObject['securitySchemes'] {
  return {
    ...(auth
      ? {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer lss_…` (`npm run keys -- create`).' },
          streamToken: {
            type: 'apiKey',
            in: 'query',
            name: 'token',
            description: 'A token from POST /api/chat/{chatId}/stream-token, for a browser\'s EventSource; only on GET /api/chat/{chatId}/stream.',
          },
        }
      : {}),
    ...(auth && jwt
      ? { jwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An end user\'s access token from the configured identity provider.' } }
      : {}),
    ...(metrics ? { metricsToken: { type: 'http', scheme: 'bearer', description: 'The `[metrics] token`, for GET /metrics only.' } } : {}),
  };
}
