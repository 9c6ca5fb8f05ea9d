/**
 * A server's SQLite commits never copy the WAL into the database file themselves (that ran on the
 * event loop, for up to hundreds of milliseconds): a thread of their own does it, every second.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { openStore, type OpenedStore } from '../../src/store/open-store';
import { eventually } from '../support/chat-client';

let folder: string;
let opened: OpenedStore | undefined;

beforeEach(() => {
  folder = mkdtempSync(path.join(tmpdir(), 'checkpoints-'));
});

afterEach(async () => {
  await opened?.store.close();
  opened = undefined;
  rmSync(folder, { recursive: true, force: true });
});

test('a commit far past the automatic checkpoint size leaves the database file as it was; the checkpoint thread copies it soon after', async () => {
  const file = path.join(folder, 'chat.db');
  opened = await openStore({
    databaseUrl: `file:${file}`,
    prismaDir: path.join(PROJECT_ROOT, 'prisma'),
    lockWaitMs: 1000,
    owner: true,
    poolSize: 1,
    statementTimeoutMs: 0,
  });
  const size = (name: string) => statSync(name, { throwIfNoEntry: false })?.size ?? 0;
  const before = size(file);
  // About 3,000 pages of 4 KiB: three times SQLite's default automatic checkpoint (1,000 pages).
  const content = 'x'.repeat(12 * 1024 * 1024);
  await opened.store.beginTurn({
    chatId: randomUUID(),
    ownerId: 'owner',
    systemPrompt: undefined,
    title: 'Big',
    messages: [{ role: 'user', content, tokenCount: 1 }],
    reply: { id: randomUUID(), model: 'gpt-4o', systemPromptHash: 'hash', instanceId: 'test' },
  });
  expect(size(`${file}-wal`)).toBeGreaterThan(content.length);
  expect(size(file)).toBe(before);
  await eventually(() => (size(file) > content.length ? true : undefined), 5_000);
});
