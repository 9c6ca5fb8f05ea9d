import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { PROJECT_ROOT } from '../../src/build-service';

const MAIN_PATH = path.join(PROJECT_ROOT, 'src', 'main.ts');

/**
 * `--import tsx` resolves tsx from the working directory, which in these tests is a temp folder
 * with no node_modules: pass the loader's own file URL instead.
 */
export const TSX_LOADER = pathToFileURL(require.resolve('tsx', { paths: [PROJECT_ROOT] })).href;

/** Variables the service reads; none may leak in from the environment running the tests. */
const SERVICE_VARIABLES = ['NODE_ENV', 'PORT', 'HOST', 'DATABASE_URL', 'CONFIG_PATH', 'LOG_LEVEL', 'INSTANCE_ID', 'REDIS_URL', 'WORKERS', 'METRICS_ENABLED', 'METRICS_TOKEN'];

/** One pino line of the server's stdout. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** How a process ended: an exit code, or the signal that killed it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Every JSON line written to stdout so far. */
  logs: LogLine[];
  stderr(): string;
  /** The first match of `pattern` in stderr; rejects if the process ends first or after `timeoutMs`. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The first log line matching `predicate`; rejects if the process ends first or after `timeoutMs`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** How the process ended; rejects if it is still running after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<Exit>;
}

/** A copy of the environment without anything that configures the service, plus `overrides`. */
export function serviceEnvironment(overrides: Record<string, string>): NodeJS.ProcessEnv {
  const environment = { ...process.env };
  for (const name of Object.keys(environment)) {
    if (/^(AZURE_|OPENAI_)/.test(name) || SERVICE_VARIABLES.includes(name)) delete environment[name];
  }
  return { ...environment, ...overrides };
}

/**
 * `promise`, or a rejection naming `what()` after `timeoutMs`. `what` is a function so that the
 * message shows the logs as they are when the time is up, not when the wait began.
 */
export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)), timeoutMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// Jest gives every test file its own module registry, so each file has its own list.
const running: ServerProcess[] = [];

/**
 * Spawns `src/main.ts` (through tsx) in `cwd` with exactly `environment`, collecting its logs.
 * The process is remembered until `stopServers()`.
 */
export function startServer(cwd: string, environment: NodeJS.ProcessEnv): ServerProcess {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN_PATH], { cwd, env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const events = new EventEmitter();
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    const lines = stdout.split('\n');
    stdout = lines.pop()!;
    for (const text of lines.filter(Boolean)) {
      const line = JSON.parse(text) as LogLine;
      logs.push(line);
      events.emit('log', line);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    events.emit('stderr');
  });
  // 'close', not 'exit': by then stdout and stderr have been read to the end.
  const closed = new Promise<Exit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const details = () => `\nstdout: ${JSON.stringify(logs)}\nstderr: ${stderr}`;

  const server: ServerProcess = {
    child,
    logs,
    stderr: () => stderr,
    waitForLog(predicate, timeoutMs = 15_000) {
      const found = new Promise<LogLine>((resolve, reject) => {
        const earlier = logs.find(predicate);
        if (earlier) return resolve(earlier);
        const onLog = (line: LogLine) => {
          if (!predicate(line)) return;
          events.off('log', onLog);
          resolve(line);
        };
        events.on('log', onLog);
        void closed.then(() => reject(new Error(`the server exited before the expected log line${details()}`)));
      });
      return withDeadline(found, timeoutMs, () => `a log line${details()}`);
    },
    waitForStderr(pattern, timeoutMs = 15_000) {
      const found = new Promise<RegExpExecArray>((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(stderr);
          if (!match) return false;
          events.off('stderr', check);
          resolve(match);
          return true;
        };
        if (check()) return;
        events.on('stderr', check);
        void closed.then(() => {
          if (!check()) reject(new Error(`the server exited before ${pattern} appeared on stderr${details()}`));
        });
      });
      return withDeadline(found, timeoutMs, () => `${pattern} on stderr${details()}`);
    },
    waitForExit(timeoutMs = 10_000) {
      return withDeadline(closed, timeoutMs, () => `the server to exit${details()}`);
    },
  };
  running.push(server);
  return server;
}

/** The line the first start prints on stderr; group 1 is the key. */
export const FIRST_KEY_LINE =
  /^First start: created the API key "default": (lss_[A-Za-z0-9_-]{43}) \. Send it as "Authorization: Bearer <key>"\. It is not shown again\. Create more with: npm run keys -- create --name NAME\n/m;

/** The port from the server's `listening` line, once it is listening (PORT=0 picks a free one). */
export async function listeningPort(server: ServerProcess, timeoutMs = 15_000): Promise<number> {
  const listening = await server.waitForLog((line) => line.msg === 'listening', timeoutMs);
  return listening.port as number;
}

/**
 * Kills (SIGKILL) every server started since the last call that is still running, and waits
 * until each has exited. For `afterEach`: a failed test must not leave a process behind.
 */
export async function stopServers(): Promise<void> {
  for (const server of running.splice(0)) {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    await server.waitForExit();
  }
}
