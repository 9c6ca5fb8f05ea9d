import { Router } from 'express';
import type { z } from 'zod';
import type { Cluster } from '../chat/cluster';
import type { ChatStore, LlmProvider } from '../chat/ports';
import { AppError, toErrorBody } from '../errors/app-error';
import type { healthSchema, readinessSchema } from './response-schemas';

/**
 * `/healthz`: the process answers. `/readyz`: the database answers too, and in multi-instance mode
 * Redis, without which no turn is accepted.
 */
export function healthRoutes(store: ChatStore, provider: LlmProvider, cluster?: Cluster): Router {
  const router = Router();
  const started = Date.now();

  router.get('/healthz', (_request, response) => {
    response.json({
      status: 'ok',
      provider: provider.name,
      model: provider.model,
      simulated: provider.name === 'simulator',
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    } satisfies z.infer<typeof healthSchema>);
  });

  router.get('/readyz', async (request, response) => {
    try {
      await store.ping();
    } catch (error) {
      request.log.error({ err: error }, 'database not reachable');
      response.status(503).json(toErrorBody(new AppError('service_unavailable', 'The database is not reachable.')));
      return;
    }
    try {
      await cluster?.ping();
    } catch (error) {
      request.log.warn({ err: error }, 'Redis not reachable');
      response.status(503).json(toErrorBody(new AppError('service_unavailable', 'Redis is not reachable: no new turn can be accepted.')));
      return;
    }
    response.json({ status: 'ready' } satisfies z.infer<typeof readinessSchema>);
  });

  return router;
}
