/**
 * SQLite runs in WAL mode, and a turn that finds the database locked by another process (the keys
 * CLI, a backup, `make db-shell`) waits for the lock instead of failing (database-locked.test.ts
 * shows that the waiting stops nothing else).
 */
import { randomUUID } from 'node:crypto';
import { postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { holdWriteLock } from '../support/sqlite-lock';
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

test('the database file is in WAL mode', async () => {
  expect(await service.query('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
});

test('a turn that finds the database locked by another process waits for the lock, then is stored', async () => {
  const chatId = randomUUID();
  const lock = await holdWriteLock(service.databasePath, 300);
  const exchange = await postChat(service.url, userTurn(chatId, 'Wait for the lock'));
  expect(exchange.status).toBe(200);
  // The turn's write could only happen once the other process had committed.
  expect(lock.lines).toEqual(['locked', 'released']);
  expect(await lock.exited).toEqual([0, null]);
  expect(await service.query('SELECT role, content, status FROM Message WHERE chatId = ? ORDER BY seq', chatId)).toEqual([
    { role: 'user', content: 'Wait for the lock', status: 'completed' },
    { role: 'assistant', content: expect.any(String), status: 'completed' },
  ]);
});
