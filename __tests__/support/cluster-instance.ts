import type { FakeUpstream } from './fake-upstream';
import { listeningPort, serviceEnvironment, startServer, type ServerProcess } from './server-process';

export interface ClusterInstance {
  name: string;
  process: ServerProcess;
  /** `http://127.0.0.1:PORT`. */
  url: string;
}

export interface ClusterSettings {
  /** The working directory of the processes. */
  directory: string;
  databaseUrl: string;
  redisUrl: string;
  /** The TOML file every instance reads (CONFIG_PATH). */
  configPath: string;
  upstream: FakeUpstream;
}

/**
 * Starts one instance of the service (`src/main.ts`, a real process) in multi-instance mode, on
 * a port of its own, answering with `upstream` as Azure OpenAI, and waits until it listens.
 */
export async function startClusterInstance(settings: ClusterSettings, name: string, extra: Record<string, string> = {}): Promise<ClusterInstance> {
  const { directory, databaseUrl, redisUrl, configPath, upstream } = settings;
  const process = startServer(
    directory,
    serviceEnvironment({
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      INSTANCE_ID: name,
      CONFIG_PATH: configPath,
      AZURE_OPENAI_API_KEY: upstream.apiKey,
      AZURE_OPENAI_ENDPOINT: `${upstream.url}/`,
      AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
      ...extra,
    }),
  );
  return { name, process, url: `http://127.0.0.1:${await listeningPort(process, 30_000)}` };
}
