import type { IncomingMessage } from 'node:http';
import OpenAI, { AzureOpenAI } from 'openai';
import { AppError } from '../errors/app-error';
import type { FinishReason, LlmEvent, LlmProvider, LlmRequest } from '../chat/ports';
import type { ProviderSettings } from '../config/resolve-provider';
import { chunkSchema } from './chunk-schema';
import { drainBody, type DrainLimits } from './drain-body';
import { mapUpstreamError } from './map-upstream-error';
import { SseDataDecoder } from './sse-data-decoder';
import { createUpstreamFetch } from './upstream-fetch';

export interface OpenAiProviderOptions {
  settings: Exclude<ProviderSettings, { kind: 'simulator' }>;
  /** A reasoning model: it is sent max_completion_tokens instead of max_tokens, and no temperature (it refuses both). */
  reasoningModel: boolean;
  temperature: number;
  maxRetries: number;
  requestTimeoutMs: number;
  /** The longest line, and the longest data of an event, accepted in the upstream's event stream. */
  maxEventBytes: number;
  /** Called each time the SDK sends a request again after a retryable failure (the metrics count them). */
  onRetry?: () => void;
}

const FINISH_REASONS: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  content_filter: 'content-filter',
  tool_calls: 'tool-calls',
  function_call: 'tool-calls',
};

/**
 * What is read of a body after its reply is whole. A server that behaves ends it right after
 * [DONE], well within a second, and the connection then serves the next request; one that holds it
 * open or sends on loses it.
 */
const DRAIN_LIMITS: DrainLimits = { timeoutMs: 1000, maxBytes: 64 * 1024 };

/**
 * Azure OpenAI (classic or v1 data plane), OpenAI, or any OpenAI-compatible server, through the
 * `openai` SDK, which builds the URLs and retries 408/409/429/5xx and connection errors before the
 * stream starts, honouring `retry-after-ms` / `retry-after`.
 *
 * Once the upstream has answered, the response body is read here rather than through the SDK's
 * `Stream`: its layers of async iterators, line decoders and byte copies cost about as much per
 * delta as everything else on the path together (bench/results.md).
 */
export function createOpenAiProvider(options: OpenAiProviderOptions): LlmProvider {
  const { settings } = options;
  // The SDK's own per-attempt timeout stays above our deadline, so ours always decides.
  const upstream = createUpstreamFetch(options.onRetry);
  const common = { apiKey: settings.apiKey, maxRetries: options.maxRetries, timeout: options.requestTimeoutMs + 1000, fetch: upstream.fetch };
  let client: OpenAI;
  let model: string;
  if (settings.kind === 'azure') {
    model = settings.deployment;
    client = /\/openai\/v1$/.test(settings.endpoint)
      ? new OpenAI({ ...common, baseURL: `${settings.endpoint}/` })
      : new AzureOpenAI({ ...common, endpoint: settings.endpoint, deployment: settings.deployment, apiVersion: settings.apiVersion });
  } else {
    model = settings.model;
    client = new OpenAI({ ...common, baseURL: settings.baseURL ?? 'https://api.openai.com/v1' });
  }

  return {
    name: settings.kind === 'azure' ? 'azure-openai' : 'openai',
    model,
    async openStream(request: LlmRequest) {
      // Refused here rather than dropped: the caller asked for it, and the upstream would refuse it.
      if (options.reasoningModel) {
        // What reasoning models refuse upstream, refused here by name.
        const refused = request.temperature !== undefined ? 'temperature' : REASONING_REFUSES.find((name) => request.sampling?.[name] !== undefined);
        if (refused) {
          const message = `The model ${model} is a reasoning model: it takes no ${refused}.`;
          throw new AppError('invalid_request', message, { details: [{ path: refused, message }] });
        }
      }
      // One deadline for the upstream to start answering, retries included. It is ours rather
      // than the SDK's per-attempt timeout so that it can be disarmed once the stream is open.
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), options.requestTimeoutMs);
      let response: Response;
      try {
        const params = {
          model,
          messages: request.messages,
          ...(options.reasoningModel ? {} : { temperature: request.temperature ?? options.temperature }),
          ...request.sampling,
          ...replyLimit(request.maxTokens, options.reasoningModel),
          stream: true as const,
          stream_options: { include_usage: true },
        };
        const signal = AbortSignal.any([request.signal, deadline.signal]);
        const headers = request.traceContext && { ...request.traceContext };
        response = await client.chat.completions.create(params, { signal, ...(headers && { headers }) }).asResponse();
      } catch (error) {
        if (deadline.signal.aborted && !request.signal.aborted) {
          throw new AppError('upstream_timeout', 'The model provider did not answer in time.', { cause: error });
        }
        throw mapUpstreamError(error);
      } finally {
        clearTimeout(timer);
      }
      const body = upstream.bodyOf(response);
      if (!body) throw new AppError('upstream_error', 'The model provider answered with no body.');
      return readEvents(body, request.signal, options.maxEventBytes);
    },
  };
}

/** Sampling settings reasoning models refuse (beside the temperature). */
const REASONING_REFUSES = ['top_p', 'presence_penalty', 'frequency_penalty', 'stop'] as const;

function replyLimit(maxTokens: number | undefined, reasoningModel: boolean) {
  if (maxTokens === undefined) return {};
  return reasoningModel ? { max_completion_tokens: maxTokens } : { max_tokens: maxTokens };
}

/**
 * The reply's events from the upstream's SSE body: JSON chunks until `[DONE]`, or until the usage
 * that comes with or after the finish chunk, whichever is first. The reply ends there, whether or
 * not the upstream ends its body; the rest of the body is drained in the background.
 */
async function* readEvents(body: IncomingMessage, signal: AbortSignal, maxEventBytes: number): AsyncGenerator<LlmEvent> {
  const decoder = new SseDataDecoder(maxEventBytes);
  let whole = false;
  let finished = false;
  try {
    // Left early, the body is drained or dropped below, not by the iterator.
    for await (const value of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      for (const data of decoder.push(value)) {
        if (data.startsWith('[DONE]')) {
          whole = true;
          return;
        }
        // Not yield*: over a sync iterable it awaits every event once more.
        for (const event of eventsOf(parseChunk(data))) {
          yield event;
          // With include_usage the usage is the last thing a reply has to say (Azure and OpenAI
          // send it in a chunk of its own, some servers in the finish chunk).
          if (event.type === 'finish') finished = true;
          else if (event.type === 'usage' && finished) whole = true;
        }
        if (whole) return;
      }
    }
  } catch (error) {
    // Aborting is the caller's decision and its reason says why; it is not an upstream failure.
    if (signal.aborted) return;
    throw mapUpstreamError(error);
  } finally {
    // A whole reply's body may still end cleanly and free its connection; any other is dropped.
    if (whole) void drainBody(body, DRAIN_LIMITS);
    else body.destroy();
  }
}

/** A chunk's JSON; an `error` object in it (sent mid-stream by some servers) fails the reply. */
function parseChunk(data: string): unknown {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch (error) {
    throw new AppError('upstream_error', 'The model provider sent a chunk that is not JSON.', { cause: error });
  }
  const upstreamError = (chunk as { error?: unknown } | null)?.error;
  if (upstreamError) throw new AppError('upstream_error', 'The model provider reported an error mid-stream.', { cause: upstreamError });
  return chunk;
}

/**
 * The model's text as it can be stored on every engine: U+0000, which PostgreSQL's `text` cannot
 * hold, becomes U+FFFD (the replacement character), so what a client is streamed is what its
 * history shows afterwards. Models do not write NUL on purpose; a provider that sends one sends junk.
 */
function storable(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

/** What one chunk says: text, a finish reason and usage, each where present; nothing for a chunk of another shape. */
function eventsOf(raw: unknown): LlmEvent[] {
  const chunk = chunkSchema.safeParse(raw);
  if (!chunk.success) return [];
  const { choices, usage } = chunk.data;
  const choice = choices[0];
  const events: LlmEvent[] = [];
  const text = choice?.delta?.content;
  if (text) events.push({ type: 'text', text: storable(text) });
  if (choice?.finish_reason) events.push({ type: 'finish', finishReason: FINISH_REASONS[choice.finish_reason] ?? 'other' });
  if (usage) {
    events.push({
      type: 'usage',
      usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens },
    });
  }
  return events;
}
