import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { ConfigError } from '../../src/config/config-error';
import { loadConfig, type Environment } from '../../src/config/load-config';
import { resolveProvider, type ProviderSettings } from '../../src/config/resolve-provider';

const DEFAULTS_PATH = path.join(PROJECT_ROOT, 'config', 'default.toml');

const AZURE: Environment = {
  AZURE_OPENAI_API_KEY: 'azure-key',
  AZURE_OPENAI_ENDPOINT: 'https://my-resource.openai.azure.com',
  AZURE_OPENAI_DEPLOYMENT_NAME: 'my-deployment',
};

/** Loads the config from the same environment, as main.ts does, then resolves the provider. */
function resolve(environment: Environment): ProviderSettings {
  return resolveProvider(loadConfig(DEFAULTS_PATH, environment), environment);
}

/** The ConfigError `run` throws; fails the test if it throws anything else or nothing. */
function configErrorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

describe('resolveProvider', () => {
  test('chooses Azure when its three variables are set, with the default API version', () => {
    expect(resolve(AZURE)).toStrictEqual({
      kind: 'azure',
      apiKey: 'azure-key',
      endpoint: 'https://my-resource.openai.azure.com',
      deployment: 'my-deployment',
      apiVersion: '2024-10-21',
    });
  });

  test('strips trailing slashes from the Azure endpoint and trims the values', () => {
    const settings = resolve({
      AZURE_OPENAI_API_KEY: ' azure-key\n',
      AZURE_OPENAI_ENDPOINT: ' https://my-resource.openai.azure.com/// ',
      AZURE_OPENAI_DEPLOYMENT_NAME: ' my-deployment ',
    });
    expect(settings).toStrictEqual({
      kind: 'azure',
      apiKey: 'azure-key',
      endpoint: 'https://my-resource.openai.azure.com',
      deployment: 'my-deployment',
      apiVersion: '2024-10-21',
    });
  });

  test('takes the API version from AZURE_OPENAI_API_VERSION', () => {
    expect(resolve({ ...AZURE, AZURE_OPENAI_API_VERSION: '2025-01-01-preview' })).toStrictEqual({
      kind: 'azure',
      apiKey: 'azure-key',
      endpoint: 'https://my-resource.openai.azure.com',
      deployment: 'my-deployment',
      apiVersion: '2025-01-01-preview',
    });
  });

  test('prefers Azure over OpenAI, and the deployment over OPENAI_MODEL', () => {
    const settings = resolve({ ...AZURE, OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: 'http://localhost:11434/v1', OPENAI_MODEL: 'gpt-4o-mini' });
    expect(settings).toStrictEqual({
      kind: 'azure',
      apiKey: 'azure-key',
      endpoint: 'https://my-resource.openai.azure.com',
      deployment: 'my-deployment',
      apiVersion: '2024-10-21',
    });
  });

  test.each<[description: string, environment: Environment, missing: string]>([
    ['only the key', { AZURE_OPENAI_API_KEY: 'azure-key' }, 'AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT_NAME'],
    ['only the endpoint', { AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com' }, 'AZURE_OPENAI_API_KEY, AZURE_OPENAI_DEPLOYMENT_NAME'],
    ['only the deployment', { AZURE_OPENAI_DEPLOYMENT_NAME: 'my-deployment' }, 'AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT'],
    ['no key', { ...AZURE, AZURE_OPENAI_API_KEY: undefined }, 'AZURE_OPENAI_API_KEY'],
    ['a blank key', { ...AZURE, AZURE_OPENAI_API_KEY: '   ' }, 'AZURE_OPENAI_API_KEY'],
    ['no endpoint, with OpenAI set as well', { ...AZURE, AZURE_OPENAI_ENDPOINT: '', OPENAI_API_KEY: 'sk-test' }, 'AZURE_OPENAI_ENDPOINT'],
  ])('rejects a partial Azure configuration (%s), naming what is missing', (_description, environment, missing) => {
    const error = configErrorOf(() => resolve(environment));
    expect(error.message).toBe(`Azure OpenAI is partly configured: set ${missing} as well.`);
  });

  test('chooses OpenAI with OPENAI_API_KEY alone, on the default base URL and model', () => {
    expect(resolve({ OPENAI_API_KEY: 'sk-test' })).toStrictEqual({
      kind: 'openai',
      apiKey: 'sk-test',
      baseURL: undefined,
      model: 'gpt-4o',
    });
  });

  test('chooses an OpenAI-compatible server (Ollama) with OPENAI_BASE_URL alone, with a placeholder key', () => {
    expect(resolve({ OPENAI_BASE_URL: 'http://localhost:11434/v1', OPENAI_MODEL: 'llama3.2' })).toStrictEqual({
      kind: 'openai',
      apiKey: 'not-needed',
      baseURL: 'http://localhost:11434/v1',
      model: 'llama3.2',
    });
  });

  test('passes both the key and the base URL when both are set', () => {
    expect(resolve({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: 'https://gateway.example.com/v1' })).toStrictEqual({
      kind: 'openai',
      apiKey: 'sk-test',
      baseURL: 'https://gateway.example.com/v1',
      model: 'gpt-4o',
    });
  });

  test.each<[description: string, environment: Environment]>([
    ['nothing is set', {}],
    ['every variable is empty, as in .env.example', { ...mapValues(AZURE, ''), OPENAI_API_KEY: '', OPENAI_BASE_URL: ' ', AZURE_OPENAI_API_VERSION: '2024-10-21' }],
    ['NODE_ENV is development', { NODE_ENV: 'development' }],
  ])('falls back to the simulator when %s', (_description, environment) => {
    expect(resolve(environment)).toStrictEqual({ kind: 'simulator' });
  });

  test('refuses the simulator in production, naming the variables to set', () => {
    const error = configErrorOf(() => resolve({ NODE_ENV: 'production' }));
    expect(error.message).toBe(
      'No model provider is configured. Set AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and ' +
        'AZURE_OPENAI_DEPLOYMENT_NAME (Azure OpenAI), or OPENAI_API_KEY and optionally ' +
        'OPENAI_BASE_URL (OpenAI or a compatible server).',
    );
  });

  test('accepts a configured provider in production', () => {
    expect(resolve({ NODE_ENV: 'production', OPENAI_API_KEY: 'sk-test' })).toStrictEqual({
      kind: 'openai',
      apiKey: 'sk-test',
      baseURL: undefined,
      model: 'gpt-4o',
    });
  });
});

function mapValues(environment: Environment, value: string): Environment {
  return Object.fromEntries(Object.keys(environment).map((key) => [key, value]));
}
