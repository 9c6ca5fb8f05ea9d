import { ConfigError } from './config-error';
import type { Config } from './config-schema';
import type { Environment } from './load-config';

export type ProviderSettings =
  | { kind: 'azure'; apiKey: string; endpoint: string; deployment: string; apiVersion: string }
  | { kind: 'openai'; apiKey: string; baseURL: string | undefined; model: string }
  | { kind: 'simulator' };

const AZURE_VARIABLES = ['AZURE_OPENAI_API_KEY', 'AZURE_OPENAI_ENDPOINT', 'AZURE_OPENAI_DEPLOYMENT_NAME'];

/**
 * Chooses the model provider from the environment: Azure OpenAI when its variables are set,
 * else OpenAI or an OpenAI-compatible server, else (outside production) the built-in simulator.
 * @throws ConfigError saying which variables to set.
 */
export function resolveProvider(config: Config, environment: Environment): ProviderSettings {
  const value = (name: string) => environment[name]?.trim() || undefined;
  const azureSet = AZURE_VARIABLES.filter((name) => value(name));
  if (azureSet.length > 0) {
    const missing = AZURE_VARIABLES.filter((name) => !value(name));
    if (missing.length > 0) {
      throw new ConfigError(`Azure OpenAI is partly configured: set ${missing.join(', ')} as well.`);
    }
    return {
      kind: 'azure',
      apiKey: value('AZURE_OPENAI_API_KEY')!,
      endpoint: value('AZURE_OPENAI_ENDPOINT')!.replace(/\/+$/, ''),
      deployment: config.openai.model,
      apiVersion: config.openai.api_version,
    };
  }
  const openAiKey = value('OPENAI_API_KEY');
  const baseURL = value('OPENAI_BASE_URL');
  if (openAiKey || baseURL) {
    // Local OpenAI-compatible servers (Ollama, vLLM, LM Studio) accept any key.
    return { kind: 'openai', apiKey: openAiKey ?? 'not-needed', baseURL, model: config.openai.model };
  }
  if (environment.NODE_ENV === 'production') {
    throw new ConfigError(
      'No model provider is configured. Set AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and ' +
        'AZURE_OPENAI_DEPLOYMENT_NAME (Azure OpenAI), or OPENAI_API_KEY and optionally ' +
        'OPENAI_BASE_URL (OpenAI or a compatible server).',
    );
  }
  return { kind: 'simulator' };
}
