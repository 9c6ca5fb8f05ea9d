import OpenAI, { AzureOpenAI } from 'openai';
import { AppError } from '../errors/app-error';
import type { FinishReason, LlmEvent, LlmProvider, LlmRequest } from '../chat/ports';
import type { ProviderSettings } from '../config/resolve-provider';
import { chunkSchema } from './chunk-schema';
import { mapUpstreamError } from './map-upstream-error';

export interface OpenAiProviderOptions {
  settings: Exclude<ProviderSettings, { kind: 'simulator' }>;
  temperature: number;
  maxRetries: number;
  requestTimeoutMs: number;
}

const FINISH_REASONS: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  content_filter: 'content-filter',
  tool_calls: 'tool-calls',
  function_call: 'tool-calls',
};

/**
 * Azure OpenAI (classic or v1 data plane), OpenAI, or any OpenAI-compatible server, through the
 * `openai` SDK, which builds the URLs and retries 408/409/429/5xx and connection errors before the
 * stream starts, honouring `retry-after-ms` / `retry-after`.
 */
export function createOpenAiProvider(options: OpenAiProviderOptions): LlmProvider {
  const { settings } = options;
  // The SDK's own per-attempt timeout stays above our deadline, so ours always decides.
  const common = { apiKey: settings.apiKey, maxRetries: options.maxRetries, timeout: options.requestTimeoutMs + 1000 };
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
      // One deadline for the upstream to start answering, retries included. It is ours rather
      // than the SDK's per-attempt timeout so that it can be disarmed once the stream is open.
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), options.requestTimeoutMs);
      let stream;
      try {
        stream = await client.chat.completions.create(
          {
            model,
            messages: request.messages,
            temperature: options.temperature,
            ...(request.maxTokens === undefined ? {} : { max_tokens: request.maxTokens }),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal: AbortSignal.any([request.signal, deadline.signal]) },
        );
      } catch (error) {
        if (deadline.signal.aborted && !request.signal.aborted) {
          throw new AppError('upstream_timeout', 'The model provider did not answer in time.', { cause: error });
        }
        throw mapUpstreamError(error);
      } finally {
        clearTimeout(timer);
      }
      return readEvents(stream, request.signal);
    },
  };
}

async function* readEvents(stream: AsyncIterable<unknown>, signal: AbortSignal): AsyncGenerator<LlmEvent> {
  try {
    for await (const raw of stream) {
      const chunk = chunkSchema.safeParse(raw);
      if (!chunk.success) continue;
      const { choices, usage } = chunk.data;
      const choice = choices[0];
      const text = choice?.delta?.content;
      if (text) yield { type: 'text', text };
      if (choice?.finish_reason) yield { type: 'finish', finishReason: FINISH_REASONS[choice.finish_reason] ?? 'other' };
      if (usage) {
        yield {
          type: 'usage',
          usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens },
        };
      }
    }
  } catch (error) {
    // Aborting is the caller's decision and its reason says why; it is not an upstream failure.
    if (signal.aborted) return;
    throw mapUpstreamError(error);
  }
}
