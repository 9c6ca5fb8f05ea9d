import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from '../../src/build-service';
import { serviceEnvironment } from './server-process';

export interface CommandRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` in the project's folder, in a process of its own, with none of the service's
 * variables from the test's environment but `overrides`; resolves with its exit code and output.
 */
export function runCommand(command: string, args: string[], overrides: Record<string, string>): Promise<CommandRun> {
  const child = spawn(command, args, { cwd: PROJECT_ROOT, env: serviceEnvironment(overrides), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
