import { spawn } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import type { MigrateRun } from './run-migrate';
import { serviceEnvironment, TSX_LOADER } from './server-process';

/**
 * Runs `npm run db:copy -- ...args` in a process of its own (through node and tsx directly, which
 * starts quicker than npm), with none of the service's variables set (the command takes both
 * databases from its arguments only) but `environment`.
 */
export function runDbCopy(args: string[], environment: Record<string, string> = {}): Promise<MigrateRun> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, path.join(PROJECT_ROOT, 'src', 'cli', 'db-copy.ts'), ...args], {
    cwd: PROJECT_ROOT,
    env: serviceEnvironment(environment),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
