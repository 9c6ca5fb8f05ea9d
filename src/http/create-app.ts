import { isUtf8 } from 'node:buffer';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Store } from 'express-rate-limit';
import type { ChatService } from '../chat/chat-service';
import type { Cluster } from '../chat/cluster';
import type { Conversations } from '../chat/conversations';
import type { ChatStore, LlmProvider } from '../chat/ports';
import type { ApiKeys } from '../auth/api-keys';
import type { JwtVerifier } from '../auth/jwt-verifier';
import type { StreamTokens } from '../auth/stream-tokens';
import type { Config } from '../config/config-schema';
import { messageLimits } from '../config/load-config';
import { AppError, bodyVerifyError } from '../errors/app-error';
import { acceptStreamToken } from './accept-stream-token';
import { apiDocsRoutes } from './api-docs-routes';
import { authenticate } from './authenticate';
import { chatRoutes } from './chat-routes';
import { conversationRoutes } from './conversation-routes';
import { errorHandler, notFoundHandler } from './error-handler';
import { healthRoutes } from './health-routes';
import { httpMetrics } from './http-metrics';
import { metricsRoute, type MetricsExposition } from './metrics-route';
import type { ServiceMetrics } from '../metrics/service-metrics';
import { openAiErrorHandler } from './openai-errors';
import { openAiRoutes } from './openai-routes';
import { openStreamLimit, sharedStreamLimit } from './open-stream-limit';
import { requestLogging } from './request-logging';
import { requestsPerMinute } from './rate-limits';
import { crossOrigin, securityHeaders } from './security';
import { streamTokenRoutes } from './stream-token-routes';
import { webPage } from './web-page';

export interface AppDependencies {
  config: Config;
  logger: Logger;
  /** Undefined when auth is off. */
  keys: ApiKeys | undefined;
  /** End users' JWTs, when `[auth] jwt_*` are set (beside API keys). */
  jwtVerifier?: JwtVerifier;
  /** Tokens for a browser's EventSource (GET /api/chat/:chatId/stream?token=…). */
  streamTokens: StreamTokens;
  chat: ChatService;
  conversations: Conversations;
  store: ChatStore;
  provider: LlmProvider;
  /** Multi-instance mode: limits, readiness and replies shared with the other instances. */
  cluster?: Cluster;
  /** The built chat page (dist/web); undefined: no page. */
  webDirectory?: string;
  /** Where requests per minute are counted; undefined: in this process. */
  rateLimitStore?: Store;
  /** `[metrics] enabled`: what is counted, and what GET /metrics serves. */
  metrics?: { service: ServiceMetrics; exposition: MetricsExposition };
}

/** The HTTP application. It never listens: `main.ts` (or a test) does. */
export function createApp(dependencies: AppDependencies): Express {
  const { config, logger, keys, jwtVerifier, streamTokens, chat, conversations, store, provider, cluster, rateLimitStore, metrics } = dependencies;
  const { limits } = config;
  const maxOpenStreams = limits.max_open_streams || 4 * limits.concurrent_streams;
  // One count of open streams per key, for /api/chat and /v1/chat/completions together.
  const admitStream = !keys
    ? undefined
    : cluster
      ? sharedStreamLimit((ownerId, limit) => cluster.takeStreamSlot(ownerId, limit), maxOpenStreams)
      : openStreamLimit(maxOpenStreams);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (metrics) app.use(httpMetrics(metrics.service, app));
  app.use(requestLogging(logger));
  app.use(securityHeaders());
  app.use(crossOrigin(config.server.cors_origins));
  app.use(healthRoutes(store, provider, cluster));
  // Before the key check: scrapers have no API key (the route has its own token or network rule).
  if (metrics) app.use(metricsRoute(metrics.exposition, config.metrics.token));
  if (dependencies.webDirectory) app.use(webPage(dependencies.webDirectory));
  app.use(apiDocsRoutes({ config, auth: keys !== undefined, jwt: jwtVerifier !== undefined, webPage: dependencies.webDirectory !== undefined, metrics: metrics !== undefined }));
  // The one route a stream token opens; it is then authenticated, and counted, as its owner.
  if (keys) app.get('/api/chat/:chatId/stream', acceptStreamToken(streamTokens));
  app.use('/api', authenticate(keys, jwtVerifier));
  app.use('/v1', authenticate(keys, jwtVerifier));
  // Limits are per API key (or end user): with auth off there are no keys to count against.
  // One count per key for both APIs (one limiter: express-rate-limit refuses a store shared by two).
  if (keys) app.use(['/api', '/v1'], requestsPerMinute(limits.requests_per_minute, rateLimitStore));
  app.use(requireUtf8Charset);
  app.use(express.json({ limit: config.server.body_limit, verify: requireUtf8 }));
  app.use(
    chatRoutes(chat, {
      heartbeatMs: config.streaming.heartbeat_seconds * 1000,
      slowReaderMs: config.streaming.slow_reader_timeout_seconds * 1000,
      limits: messageLimits(config),
      admitStream,
      readers: metrics?.service,
    }),
  );
  app.use(streamTokenRoutes(streamTokens));
  app.use(conversationRoutes(conversations));
  app.use(
    '/v1',
    openAiRoutes(provider, config, { admitStream, holdTurn: (ownerId) => chat.holdTurn(ownerId), metrics: metrics?.service, readers: metrics?.service }),
    openAiErrorHandler,
  );
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}

/** JSON must be UTF-8: a body that is not is refused rather than read with replacement characters. */
function requireUtf8(_request: unknown, _response: unknown, body: Buffer): void {
  if (!isUtf8(body)) throw bodyVerifyError('encoding.invalid', 'The request body is not valid UTF-8.');
}

/** JSON bodies in another charset (UTF-16, UTF-7...) are refused: this API speaks UTF-8 only. */
function requireUtf8Charset(request: Request, _response: Response, next: NextFunction): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.get('content-type') ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    next(new AppError('unsupported_media_type', 'The request body charset is not supported; use UTF-8.'));
    return;
  }
  next();
}
