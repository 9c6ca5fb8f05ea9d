import { spawn } from 'node:child_process';
import { once } from 'node:events';

export interface HeldLock {
  /** What the other process said so far: `locked`, then `released`. */
  lines: string[];
  /** Resolves with [exit code, signal] once the other process has committed and exited. */
  exited: Promise<unknown[]>;
}

/**
 * Another OS process takes the SQLite write lock of `databasePath` (BEGIN IMMEDIATE and an UPDATE,
 * as a backup job or an open `sqlite3` shell would), says "locked", holds it for `holdMs`, then
 * commits and says "released". Resolves once the lock is held.
 */
export async function holdWriteLock(databasePath: string, holdMs: number): Promise<HeldLock> {
  const script = `
    const Database = require('better-sqlite3');
    const database = new Database(process.argv[1]);
    database.exec('BEGIN IMMEDIATE');
    database.prepare('UPDATE "ApiKey" SET "name" = "name"').run();
    process.stdout.write('locked\\n');
    setTimeout(() => { database.exec('COMMIT'); process.stdout.write('released\\n'); database.close(); }, Number(process.argv[2]));
  `;
  const child = spawn(process.execPath, ['-e', script, databasePath, String(holdMs)], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (text: string) => lines.push(...text.trim().split('\n')));
  const exited = once(child, 'exit');
  while (!lines.includes('locked')) {
    if (child.exitCode !== null) throw new Error('the lock holder exited before taking the lock');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { lines, exited };
}
