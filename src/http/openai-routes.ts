import { Router, type Request, type Response } from 'express';
import { openCompletion } from '../chat/open-completion';
import type { FinishReason, LlmEvent, LlmProvider, Usage } from '../chat/ports';
import type { Config } from '../config/config-schema';
import { messageLimits, replyTokenLimit } from '../config/load-config';
import { CLIENT_GONE } from '../errors/abort-reasons';
import { AppError } from '../errors/app-error';
import { methodNotAllowed } from './error-handler';
import { chatCompletion, modelList, modelObject, newCompletionIdentity, type CompletionIdentity } from './openai-chunks';
import { modelNotFound, openAiNotFound } from './openai-errors';
import { ownerOf } from './authenticate';
import { completionRequestParser, type CompletionBody } from './openai-request-schema';
import { streamCompletion } from './openai-stream';
import type { StreamReaders } from './sse-response';
import { traceContextOf, traceIdOf } from './trace-context';
import type { ReplyMetrics } from '../chat/ports';
import type { StreamAdmission } from './open-stream-limit';

/**
 * OpenAI's chat completions and models API, mounted on /v1, so that OpenAI's SDKs and tools work
 * against the service with `baseURL = <service>/v1`. Stateless as OpenAI's is: each request
 * carries the whole conversation and nothing is stored. Each completion counts against its key's
 * open streams and replies generating at once. Mount `openAiErrorHandler` after it.
 */
export function openAiRoutes(provider: LlmProvider, config: Config, admission: CompletionAdmission): Router {
  const { admitStream, holdTurn } = admission;
  const router = Router();
  // The reply limit of chat turns: the most a request may ask, and what it gets when it asks none.
  const parseCompletionRequest = completionRequestParser({ ...messageLimits(config), maxTokens: replyTokenLimit(config) });
  const idleTimeoutMs = config.streaming.upstream_idle_timeout_seconds * 1000;
  const slowReaderMs = config.streaming.slow_reader_timeout_seconds * 1000;
  const model = { id: provider.model, created: Math.floor(Date.now() / 1000), ownedBy: provider.name };

  router.post('/chat/completions', async (request, response) => {
    if (!request.is('application/json')) {
      throw new AppError('unsupported_media_type', 'Send the request body as JSON with Content-Type: application/json.');
    }
    const body = parseCompletionRequest(request.body);
    if (body.model !== undefined && body.model !== provider.model) throw modelNotFound(body.model);
    await admitStream?.(response);
    const release = await holdTurn(ownerOf(response));
    try {
      await complete(request, response, body);
    } finally {
      release();
    }
  });
  router.all('/chat/completions', methodNotAllowed(['POST']));

  const complete = async (request: Request, response: Response, body: CompletionBody) => {
    const identity = newCompletionIdentity(provider.model);
    const traceContext = traceContextOf(request);
    const log = request.log.child(traceContext ? { completionId: identity.id, traceId: traceIdOf(traceContext) } : { completionId: identity.id });
    // 'close' on the response, not the request: the request's fires as soon as its body is read.
    const clientGone = new AbortController();
    response.on('close', () => clientGone.abort(CLIENT_GONE));
    const { messages, maxTokens, temperature, sampling } = body;
    const events = await openCompletion(
      provider,
      { messages, maxTokens, temperature, sampling, signal: clientGone.signal, log, ...(traceContext && { traceContext }) },
      { idleTimeoutMs, metrics: admission.metrics },
    );
    if (body.stream) {
      await streamCompletion(events, response, { identity, includeUsage: body.includeUsage, slowReaderMs, log, readers: admission.readers });
      return;
    }
    const completion = await collectCompletion(events, identity);
    if (!response.destroyed) response.json(completion);
  };

  router.get('/models', (_request, response) => {
    response.json(modelList(model));
  });
  router.all('/models', methodNotAllowed(['GET']));
  router.get('/models/:model', (request, response) => {
    if (request.params.model !== model.id) throw modelNotFound(request.params.model);
    response.json(modelObject(model));
  });
  router.all('/models/:model', methodNotAllowed(['GET']));

  router.use(openAiNotFound);
  return router;
}

export interface CompletionAdmission {
  /** Counts the completion against its key's open streams; undefined (auth off): no limit. */
  admitStream: StreamAdmission | undefined;
  /** Counts it as one of the key's replies generating at once, until the returned release. */
  holdTurn: (ownerId: string) => Promise<() => void>;
  /** Where completions and their upstream failures are counted; undefined: not measured. */
  metrics?: ReplyMetrics;
  /** Where open event streams are counted; undefined: not counted. */
  readers?: StreamReaders;
}

/** The whole reply of a request without `stream: true`; throws what iterating the events throws. */
async function collectCompletion(events: AsyncIterable<LlmEvent>, identity: CompletionIdentity) {
  let content = '';
  let finishReason: FinishReason = 'stop';
  let usage: Usage | null = null;
  for await (const event of events) {
    if (event.type === 'text') content += event.text;
    else if (event.type === 'finish') finishReason = event.finishReason;
    else usage = event.usage;
  }
  return chatCompletion(identity, { content, finishReason, usage });
}
