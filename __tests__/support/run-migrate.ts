import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { runCommand, type CommandRun } from './run-command';
import { TSX_LOADER } from './server-process';

export type MigrateRun = CommandRun;

/**
 * Runs the migrate command in a process of its own with exactly the service variables in
 * `overrides`: `npm run migrate` when `through` is 'npm' (as an operator would), else its script
 * through node and tsx directly (quicker to start).
 */
export function runMigrate(overrides: Record<string, string>, through: 'npm' | 'node' = 'node'): Promise<MigrateRun> {
  return through === 'npm'
    ? runCommand('npm', ['run', '--silent', 'migrate'], overrides)
    : runCommand(process.execPath, ['--import', TSX_LOADER, path.join(PROJECT_ROOT, 'src', 'cli', 'migrate.ts')], overrides);
}
