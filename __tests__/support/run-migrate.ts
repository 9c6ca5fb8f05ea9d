import { spawn } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { serviceEnvironment, TSX_LOADER } from './server-process';

export interface MigrateRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the migrate command in a process of its own with exactly the service variables in
 * `overrides`: `npm run migrate` when `through` is 'npm' (as an operator would), else its script
 * through node and tsx directly (quicker to start).
 */
export function runMigrate(overrides: Record<string, string>, through: 'npm' | 'node' = 'node'): Promise<MigrateRun> {
  const [command, args] =
    through === 'npm'
      ? ['npm', ['run', '--silent', 'migrate']]
      : [process.execPath, ['--import', TSX_LOADER, path.join(PROJECT_ROOT, 'src', 'cli', 'migrate.ts')]];
  const child = spawn(command as string, args as string[], { cwd: PROJECT_ROOT, env: serviceEnvironment(overrides), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
