import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Child processes of a benchmark run: started here, remembered, and always stopped by `stopAll`
 * (normal end, failure, Ctrl-C), each by its own pid.
 */

export const PROJECT_ROOT = path.resolve(__dirname, '..');

/** The tsx loader by file URL, so the TypeScript children load whatever the working directory. */
const TSX_LOADER = pathToFileURL(require.resolve('tsx', { paths: [PROJECT_ROOT] })).href;

const running = new Set<ChildProcess>();

/** Remembers `child` until it exits, so `stopAll` can end it. */
export function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Forks a bench TypeScript file with an IPC channel (its control and result channel). */
export function forkTs(file: string, args: string[] = []): ChildProcess {
  return track(
    fork(path.join(__dirname, file), args, {
      execArgv: ['--import', TSX_LOADER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
}

/** The next IPC message of `child` that `accept` recognises; rejects if the child exits first or after `timeoutMs`. */
export function nextMessage<T>(child: ChildProcess, accept: (message: unknown) => message is T, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: unknown): void => {
      if (!accept(message)) return;
      done();
      resolve(message);
    };
    const onExit = (code: number | null, signal: string | null): void => {
      done();
      reject(new Error(`${what}: the process exited (code ${code}, signal ${signal})`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Resolves when `child` has exited, or after `timeoutMs` (false). */
function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Asks `child` to stop (SIGTERM, and IPC disconnect), then kills it if it has not within `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.disconnect();
  child.kill('SIGTERM');
  if (!(await exited(child, graceMs))) {
    child.kill('SIGKILL');
    await exited(child, 2000);
  }
}

/** Stops every child still running, in parallel. */
export async function stopAll(graceMs: number): Promise<void> {
  await Promise.all([...running].map((child) => stopChild(child, graceMs)));
}

/** Last resort on process exit (synchronous): SIGKILL whatever is still running. */
export function killAllNow(): void {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
