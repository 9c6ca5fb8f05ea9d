import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { AppError } from '../errors/app-error';

/** A worker asks the primary for every worker's metrics, summed; the primary answers with the text. */
const REQUEST = 'llm-service:metrics-request';
const ANSWER = 'llm-service:metrics-answer';

interface MetricsRequest {
  type: typeof REQUEST;
  id: string;
}

interface MetricsAnswer {
  type: typeof ANSWER;
  id: string;
  text?: string;
  error?: string;
}

/** How long a worker waits for the primary's answer (prom-client gives the workers 5 s to report). */
const ANSWER_TIMEOUT_MS = 6000;

/**
 * In a worker of `[server] workers`: lets the primary collect `registry` (prom-client's cluster
 * protocol), and returns how this worker gets the sum of every worker's metrics. A scrape reaches
 * whichever worker the port hands it to, and sees the whole service.
 */
export function workerMetrics(registry: Registry): () => Promise<{ contentType: string; text: string }> {
  AggregatorRegistry.setRegistries([registry]);
  // Its constructor makes this worker answer the primary's collection requests.
  new AggregatorRegistry();
  const waiting = new Map<string, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  process.on('message', (message: MetricsAnswer) => {
    if (message?.type !== ANSWER) return;
    const caller = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.text !== undefined) caller?.resolve(message.text);
    else caller?.reject(new Error(message.error ?? 'no metrics'));
  });
  return async () => {
    const id = randomUUID();
    const text = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the primary process did not answer'));
      }, ANSWER_TIMEOUT_MS);
      waiting.set(id, {
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      process.send!({ type: REQUEST, id } satisfies MetricsRequest);
    }).catch((error: unknown) => {
      throw new AppError('service_unavailable', 'Could not collect the metrics of every worker; retry shortly.', { cause: error, retryAfterSeconds: 1 });
    });
    return { contentType: registry.contentType, text };
  };
}

/** In the primary of `[server] workers`: answers the workers' requests with every worker's metrics, summed. */
export function serveWorkersMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: MetricsRequest) => {
    if (message?.type !== REQUEST) return;
    const answer = (fields: Omit<MetricsAnswer, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: ANSWER, id: message.id, ...fields } satisfies MetricsAnswer);
    };
    aggregator.clusterMetrics().then(
      (text) => answer({ text }),
      (error: unknown) => answer({ error: error instanceof Error ? error.message : String(error) }),
    );
  });
}
