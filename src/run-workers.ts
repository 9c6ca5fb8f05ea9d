import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { serveWorkersMetrics } from './metrics/worker-metrics';

/** The variable that tells a worker its number, which a worker started in place of another keeps. */
export const WORKER_NUMBER_VARIABLE = 'SERVICE_WORKER_NUMBER';

/**
 * The primary process of `[server] workers`: starts `count` workers of this program, which share
 * the port (Node's cluster module hands out connections in turn) and coordinate through PostgreSQL
 * and Redis like separate instances. A worker that dies once serving is replaced, under the same
 * number; one that fails to start stops the whole start, as a single process would. On SIGTERM
 * or SIGINT the signal is passed on and the primary exits once every worker has drained and exited.
 */
export function runWorkers(count: number, logger: Logger): void {
  const numbers = new Map<Worker, number>();
  const serving = new Set<number>();
  let stopping = false;
  const start = (number: number) => numbers.set(cluster.fork({ [WORKER_NUMBER_VARIABLE]: String(number) }), number);

  cluster.on('listening', (worker) => {
    const number = numbers.get(worker);
    if (number !== undefined) serving.add(number);
  });
  cluster.on('exit', (worker, code, signal) => {
    const number = numbers.get(worker)!;
    numbers.delete(worker);
    if (stopping) {
      if (numbers.size === 0) {
        logger.info('every worker has stopped');
        process.exit(0);
      }
      return;
    }
    if (!serving.has(number)) {
      // It never listened: the others would fail the same way (a port in use, a bad setting).
      logger.error({ worker: number, code, signal }, 'a worker could not start: stopping');
      stopping = true;
      for (const other of numbers.keys()) other.process.kill('SIGTERM');
      if (numbers.size === 0) process.exit(code || 1);
      return;
    }
    logger.error({ worker: number, code, signal }, 'a worker stopped unexpectedly: starting another in its place');
    serving.delete(number);
    setTimeout(() => start(number), 1000).unref();
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: numbers.size }, 'shutting down the workers');
    for (const worker of numbers.keys()) worker.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // GET /metrics on any worker shows them all, summed: the primary collects them.
  serveWorkersMetrics();
  logger.info({ workers: count }, 'starting workers');
  for (let number = 1; number <= count; number += 1) start(number);
}
