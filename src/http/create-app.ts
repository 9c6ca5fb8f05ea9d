import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { ChatService } from '../chat/chat-service';
import type { Conversations } from '../chat/conversations';
import type { ChatStore, LlmProvider } from '../chat/ports';
import type { Config } from '../config/config-schema';
import { chatRoutes } from './chat-routes';
import { conversationRoutes } from './conversation-routes';
import { errorHandler, notFoundHandler } from './error-handler';
import { healthRoutes } from './health-routes';
import { requestLogging } from './request-logging';

export interface AppDependencies {
  config: Config;
  logger: Logger;
  chat: ChatService;
  conversations: Conversations;
  store: ChatStore;
  provider: LlmProvider;
}

/** The HTTP application. It never listens: `main.ts` (or a test) does. */
export function createApp(dependencies: AppDependencies): Express {
  const { config, logger, chat, conversations, store, provider } = dependencies;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestLogging(logger));
  app.use(healthRoutes(store, provider));
  app.use(express.json({ limit: config.server.body_limit }));
  app.use(chatRoutes(chat, { heartbeatMs: config.streaming.heartbeat_seconds * 1000 }));
  app.use(conversationRoutes(conversations));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
