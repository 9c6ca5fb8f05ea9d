import { z } from 'zod';
import type { ZodOpenApiOperationObject, ZodOpenApiPathsObject } from 'zod-openapi';
import type { ErrorCode } from '../errors/app-error';
import { errorResponses, json, requestIdParameter, success } from './openapi-responses';
import { healthSchema, readinessSchema } from './response-schemas';

export interface ServicePathOptions {
  /** The chat page is served (GET /). */
  webPage: boolean;
  /** GET /metrics is served; `token`: it needs `Authorization: Bearer <token>`. */
  metrics: { token: boolean } | undefined;
}

/** An operation that needs no API key. */
function publicOperation(spec: Omit<ZodOpenApiOperationObject, 'responses'> & { codes: ErrorCode[]; ok: ZodOpenApiOperationObject['responses'] }) {
  const { codes, ok, ...rest } = spec;
  return {
    tags: ['Service'],
    security: [],
    ...rest,
    requestParams: { header: z.object({ 'X-Request-Id': requestIdParameter }) },
    responses: { ...ok, ...errorResponses([...codes, 'internal_error'], 'service') },
  } satisfies ZodOpenApiOperationObject;
}

const html = (description: string) => success(200, description, { 'text/html': { schema: z.string() } });

/** Health, the chat page, this description and its reference page, and the metrics: none needs an API key. */
export function servicePaths(options: ServicePathOptions): ZodOpenApiPathsObject {
  const page = publicOperation({ summary: 'The chat page', ok: { '200': html('The chat page.') }, codes: ['not_found'] });
  return {
    '/healthz': { get: publicOperation({ summary: 'The process answers', ok: { '200': success(200, 'Alive.', json(healthSchema)) }, codes: [] }) },
    '/readyz': {
      get: publicOperation({
        summary: 'The database (and Redis, with several instances) answers',
        ok: { '200': success(200, 'Ready for turns.', json(readinessSchema)) },
        codes: ['service_unavailable'],
      }),
    },
    ...(options.webPage ? { '/': { get: page }, '/index.html': { get: page } } : {}),
    '/openapi.json': {
      get: publicOperation({
        summary: 'This OpenAPI 3.1 document',
        ok: { '200': success(200, 'The document.', json(z.record(z.string(), z.unknown()))) },
        codes: [],
      }),
    },
    '/docs': { get: publicOperation({ summary: 'The interactive API reference (Swagger UI)', ok: { '200': html('The reference page.') }, codes: [] }) },
    ...(options.metrics ? { '/metrics': { get: metricsOperation(options.metrics.token) } } : {}),
  };
}

function metricsOperation(token: boolean) {
  return {
    ...publicOperation({
      summary: 'Prometheus metrics',
      description: token
        ? 'Needs `Authorization: Bearer <[metrics] token>`; API keys play no part.'
        : 'Answers only clients on loopback or private networks, not through a proxy (no `[metrics] token` is set).',
      tags: ['Metrics'],
      ok: { '200': success(200, 'The Prometheus text exposition format.', { 'text/plain; version=0.0.4; charset=utf-8': { schema: z.string() } }) },
      // 503: with several workers, when the primary process did not collect them all in time.
      codes: [token ? 'unauthorized' : 'forbidden', 'service_unavailable'],
    }),
    security: token ? [{ metricsToken: [] }] : [],
  } satisfies ZodOpenApiOperationObject;
}
