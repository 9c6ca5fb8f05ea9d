import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { runCommand, type CommandRun } from './run-command';
import { TSX_LOADER } from './server-process';

/**
 * Runs `npm run db:copy -- ...args` in a process of its own (through node and tsx directly, which
 * starts quicker than npm), with none of the service's variables set (the command takes both
 * databases from its arguments only) but `environment`.
 */
export function runDbCopy(args: string[], environment: Record<string, string> = {}): Promise<CommandRun> {
  return runCommand(process.execPath, ['--import', TSX_LOADER, path.join(PROJECT_ROOT, 'src', 'cli', 'db-copy.ts'), ...args], environment);
}
