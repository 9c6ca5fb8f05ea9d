import type { LlmProvider } from '../chat/ports';
import type { Config } from '../config/config-schema';
import type { ProviderSettings } from '../config/resolve-provider';
import { createOpenAiProvider } from './openai-provider';
import { createSimulatorProvider } from './simulator-provider';

/** The model provider for `settings`, tuned by the `[openai]` and `[simulator]` settings. */
export function createProvider(settings: ProviderSettings, config: Config): LlmProvider {
  if (settings.kind === 'simulator') return createSimulatorProvider({ delayMs: config.simulator.delay_ms });
  return createOpenAiProvider({
    settings,
    temperature: config.openai.temperature,
    maxRetries: config.openai.max_retries,
    requestTimeoutMs: config.openai.request_timeout_seconds * 1000,
  });
}
