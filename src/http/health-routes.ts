import { Router } from 'express';
import type { ChatStore, LlmProvider } from '../chat/ports';
import { AppError, toErrorBody } from '../errors/app-error';

/** `/healthz`: the process answers. `/readyz`: the database answers too. */
export function healthRoutes(store: ChatStore, provider: LlmProvider): Router {
  const router = Router();
  const started = Date.now();

  router.get('/healthz', (_request, response) => {
    response.json({
      status: 'ok',
      provider: provider.name,
      model: provider.model,
      simulated: provider.name === 'simulator',
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    });
  });

  router.get('/readyz', async (request, response) => {
    try {
      await store.ping();
      response.json({ status: 'ready' });
    } catch (error) {
      request.log.error({ err: error }, 'database not reachable');
      response.status(503).json(toErrorBody(new AppError('service_unavailable', 'The database is not reachable.')));
    }
  });

  return router;
}
