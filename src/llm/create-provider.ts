import type { LlmProvider } from '../chat/ports';
import type { Config } from '../config/config-schema';
import type { ProviderSettings } from '../config/resolve-provider';
import { createOpenAiProvider } from './openai-provider';
import { createSimulatorProvider } from './simulator-provider';

/**
 * The model provider for `settings`, tuned by the `[openai]` and `[simulator]` settings;
 * `onRetry` hears of each request sent again after a retryable failure.
 */
export function createProvider(settings: ProviderSettings, config: Config, onRetry?: () => void): LlmProvider {
  if (settings.kind === 'simulator') return createSimulatorProvider({ delayMs: config.simulator.delay_ms });
  const model = settings.kind === 'azure' ? settings.deployment : settings.model;
  const { reasoning_model: reasoning } = config.openai;
  return createOpenAiProvider({
    settings,
    reasoningModel: reasoning === 'auto' ? isReasoningModel(model) : reasoning,
    temperature: config.openai.temperature,
    maxRetries: config.openai.max_retries,
    requestTimeoutMs: config.openai.request_timeout_seconds * 1000,
    maxEventBytes: config.openai.max_event_bytes,
    ...(onRetry && { onRetry }),
  });
}

/** o1, o3 and o4 models and the gpt-5 family reason before they answer, and take other parameters. */
export function isReasoningModel(model: string): boolean {
  return /(^|[^a-z0-9])(o[134])($|[^a-z0-9])|gpt-5/i.test(model);
}
