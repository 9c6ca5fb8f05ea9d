/**
 * SQLite runs in WAL mode with a busy timeout: a turn that finds the database locked by another
 * process (the keys CLI, a backup, `make db-shell`) waits for the lock instead of failing.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream });
});

afterAll(async () => {
  await service.close();
  await upstream.close();
});

/** Another process takes the write lock, says "locked", holds it for `holdMs`, then commits. */
async function holdWriteLock(databasePath: string, holdMs: number) {
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
  while (!lines.includes('locked')) await new Promise((resolve) => setTimeout(resolve, 10));
  return { lines, exited: once(child, 'exit') };
}

test('the database file is in WAL mode', () => {
  expect(service.query('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
});

test('a turn that finds the database locked by another process waits for the lock, then is stored', async () => {
  const chatId = randomUUID();
  const lock = await holdWriteLock(service.databasePath, 300);
  const exchange = await postChat(service.url, userTurn(chatId, 'Wait for the lock'));
  expect(exchange.status).toBe(200);
  // The turn's write could only happen once the other process had committed.
  expect(lock.lines).toEqual(['locked', 'released']);
  expect(await lock.exited).toEqual([0, null]);
  expect(service.query('SELECT role, content, status FROM Message WHERE chatId = ? ORDER BY seq', chatId)).toEqual([
    { role: 'user', content: 'Wait for the lock', status: 'completed' },
    { role: 'assistant', content: expect.any(String), status: 'completed' },
  ]);
});
