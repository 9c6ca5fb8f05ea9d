import { Router } from 'express';
import { AppError } from '../errors/app-error';
import { hasScrapeToken, isPrivateAddress } from '../metrics/scrape-access';
import { methodNotAllowed } from './error-handler';

/** The Prometheus text of this process, or of every worker of a `[server] workers` start. */
export type MetricsExposition = () => Promise<{ contentType: string; text: string }>;

/**
 * `GET /metrics` for Prometheus. With `token` set, only `Authorization: Bearer <token>` opens it,
 * from anywhere. Without, it answers only peers on loopback or a private network, where scrapers
 * run; a request that came through a proxy (it carries `X-Forwarded-For` or `Forwarded`) is refused
 * too, since its peer address is the proxy's and says nothing of the client. API keys play no part.
 */
export function metricsRoute(exposition: MetricsExposition, token: string): Router {
  const router = Router();
  router.get('/metrics', async (request, response) => {
    if (token) {
      if (!hasScrapeToken(request.get('authorization'), token)) {
        response.setHeader('www-authenticate', 'Bearer realm="metrics"');
        throw new AppError('unauthorized', 'Send the metrics token as "Authorization: Bearer <token>".');
      }
    } else if (!isPrivateAddress(request.socket.remoteAddress) || request.get('x-forwarded-for') !== undefined || request.get('forwarded') !== undefined) {
      throw new AppError('forbidden', 'Metrics are served only to loopback and private networks; set [metrics] token to scrape from elsewhere.');
    }
    const { contentType, text } = await exposition();
    response.setHeader('content-type', contentType);
    response.setHeader('cache-control', 'no-store');
    response.end(text);
  });
  router.all('/metrics', methodNotAllowed(['GET']));
  return router;
}
