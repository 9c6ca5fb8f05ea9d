/**
 * Another OS process holds the SQLite write lock (a backup, `make db-shell`, a script) while
 * replies stream. Nothing in the server may wait for it synchronously: the event loop keeps
 * answering, streams keep flowing, requests that must write wait on timers and then get 503, and
 * a reply that ends meanwhile is stored whole once the lock is gone.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, openChatStream, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { holdWriteLock } from '../support/sqlite-lock';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  await service.close();
  await upstream.close();
});

async function reply(chatId: string) {
  const [row] = await service.query<{ content: string; status: string }>(
    `SELECT "content", "status" FROM "Message" WHERE "chatId" = ? AND "role" = 'assistant'`,
    chatId,
  );
  return row;
}

/** The chat's reply once `holds` is true of it. */
function replyWhen(chatId: string, holds: (row: { content: string; status: string }) => boolean, timeoutMs?: number) {
  return eventually(async () => {
    const row = await reply(chatId);
    return row && holds(row) ? row : undefined;
  }, timeoutMs);
}

/** How long /healthz takes to answer, in ms. */
async function healthzLatency(): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${service.url}/healthz`);
  await response.text();
  expect(response.status).toBe(200);
  return performance.now() - started;
}

const WORDS = Array.from({ length: 24 }, (_, index) => `w${index} `);

test('while another process holds the lock for 6 s, /healthz answers at once, the stream flows to its end, a new turn gets 503, and the reply is stored whole after', async () => {
  service = await startTestService({
    upstream,
    configToml: '[streaming]\ncheckpoint_interval_seconds = 0.2\n[database]\nlock_wait_seconds = 1\n',
  });
  const chatId = randomUUID();
  // 24 words 100 ms apart: the reply ends about 2.4 s into the lock.
  upstream.enqueue({ kind: 'stream', content: WORDS, delayMs: 100 });
  const stream = await openChatStream(service.url, userTurn(chatId, 'Talk through the lock'));
  await stream.readUntil((text) => text.includes('"delta":"w0 "'));
  await replyWhen(chatId, (row) => row.content.startsWith('w0 '));

  const lock = await holdWriteLock(service.databasePath, 6_000);
  const latencies: number[] = [];
  const probing = (async () => {
    while (!lock.lines.includes('released')) {
      latencies.push(await healthzLatency());
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();

  // A new turn cannot store its messages: it waits lock_wait_seconds, then 503, and stores nothing.
  const otherChat = randomUUID();
  const refusedAt = Date.now();
  const refused = await postChat(service.url, userTurn(otherChat, 'Blocked'));
  expect(Date.now() - refusedAt).toBeGreaterThanOrEqual(1_000);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toBe('2');
  expect(refused.json()).toEqual({
    error: { code: 'service_unavailable', message: 'The database is locked by another process; retry shortly.' },
  });

  // The stream ends while the lock is still held: its closing parts do not wait for the save.
  const text = await stream.readToEnd();
  expect(lock.lines).toEqual(['locked']);
  expect(text).toContain(`"delta":"w23 "`);
  expect(text).toMatch(/data: \{"type":"finish","finishReason":"stop",.*\n\nid: \d+\ndata: \[DONE\]\n\n$/);
  expect(text).not.toContain('"type":"error"');
  expect((await reply(chatId))!.status).toBe('streaming');
  // The chat's next turn must not start on a history whose last reply is not stored yet.
  const next = await postChat(service.url, userTurn(chatId, 'Next'));
  expect({ status: next.status, retryAfter: next.headers.get('retry-after'), body: next.json() }).toEqual({
    status: 503,
    retryAfter: '1',
    body: { error: { code: 'service_unavailable', message: 'The previous reply of this chat is still being saved; retry shortly.' } },
  });

  await lock.exited;
  await probing;
  // A blocked event loop shows seconds here (SQLite's busy timeout used to wait inside the call).
  // 50 ms is the bound asked for; the maximum has some room for a machine that is busy elsewhere.
  expect(latencies.length).toBeGreaterThanOrEqual(20);
  const sorted = [...latencies].sort((a, b) => a - b);
  expect(sorted[Math.floor(sorted.length * 0.9)]).toBeLessThan(50);
  expect(sorted.at(-1)).toBeLessThan(250);
  expect(await replyWhen(chatId, (row) => row.status === 'completed', 5_000)).toEqual({
    content: WORDS.join(''),
    status: 'completed',
  });
  const chat = await fetch(`${service.url}/api/chats/${chatId}`).then((response) => response.json());
  expect(chat).toMatchObject({ lastReplyStatus: 'completed', messageCount: 2 });
  expect(await service.query(`SELECT COUNT(*) AS count FROM "Chat" WHERE "id" = ?`, otherChat)).toEqual([{ count: 0 }]);
  // The only errors logged are the refused requests': the reply was never given up on.
  const refusedIds = [refused, next].map((answer) => answer.headers.get('x-request-id')!);
  expect(service.logs.filter((line) => line.includes('"level":50') && !refusedIds.some((id) => line.includes(id)))).toEqual([]);
}, 20_000);

test('when the lock outlasts reply_save_retry_seconds, the last checkpoint is kept, the log says what was lost, and a restart marks it interrupted', async () => {
  service = await startTestService({
    upstream,
    configToml: '[streaming]\ncheckpoint_interval_seconds = 0.2\n[database]\nreply_save_retry_seconds = 1\n',
  });
  const chatId = randomUUID();
  upstream.enqueue({ kind: 'stream', content: ['Saved ', 'lost ', 'words'], firstFrameDelayMs: 0, delayMs: 1_000 });
  const stream = await openChatStream(service.url, userTurn(chatId, 'Save me'));
  await stream.readUntil((text) => text.includes('"delta":"Saved "'));
  await replyWhen(chatId, (row) => row.content === 'Saved ');

  const lock = await holdWriteLock(service.databasePath, 4_000);
  const text = await stream.readToEnd();
  expect(text).toContain('"type":"finish"');
  const lost = await eventually(
    () => service.logs.map((line) => JSON.parse(line)).find((line) => line.msg?.startsWith('could not store the reply:')),
    5_000,
  );
  expect(lost).toMatchObject({
    level: 50,
    msg: 'could not store the reply: its last checkpoint is kept, the rest of its text and its final status are lost',
    chatId,
    status: 'completed',
    characters: 'Saved lost words'.length,
    savedCharacters: 'Saved '.length,
    lostCharacters: 'lost words'.length,
  });
  expect(lock.lines).toEqual(['locked']);
  await lock.exited;
  expect(await reply(chatId)).toEqual({ content: 'Saved ', status: 'streaming' });

  await service.stop();
  const restarted = await startTestService({ upstream, reuseDatabase: service.databaseUrl });
  try {
    expect(await restarted.query(`SELECT "content", "status" FROM "Message" WHERE "role" = 'assistant'`)).toEqual([
      { content: 'Saved ', status: 'interrupted' },
    ]);
  } finally {
    await restarted.close();
  }
}, 20_000);

test('a checkpoint that fails on the lock is made at a later interval, while the reply still streams', async () => {
  service = await startTestService({ upstream, configToml: '[streaming]\ncheckpoint_interval_seconds = 0.2\n' });
  const chatId = randomUUID();
  upstream.enqueue({ kind: 'stream', content: ['Before ', 'during '], ending: 'stall', cutAfter: 2, delayMs: 300 });
  const stream = await openChatStream(service.url, userTurn(chatId, 'Checkpoint me'));
  await stream.readUntil((text) => text.includes('"delta":"Before "'));
  const lock = await holdWriteLock(service.databasePath, 1_000);
  await stream.readUntil((text) => text.includes('"delta":"during "'));
  await eventually(() => (service.logs.some((line) => line.includes('could not save a checkpoint')) ? true : undefined));
  expect(lock.lines).toEqual(['locked']);
  await lock.exited;
  expect(await replyWhen(chatId, (row) => row.content === 'Before during ')).toEqual({
    content: 'Before during ',
    status: 'streaming',
  });
  stream.hangUp();
});

/** Whether this machine lets the tests make a file immutable (root, on a file system that has the flag). */
function canMakeImmutable(): boolean {
  const probe = path.join(tmpdir(), `immutable-probe-${process.pid}`);
  writeFileSync(probe, '');
  try {
    return spawnSync('chattr', ['+i', probe]).status === 0 && spawnSync('chattr', ['-i', probe]).status === 0;
  } finally {
    rmSync(probe, { force: true });
  }
}

const immutable = canMakeImmutable();
if (!immutable) process.stdout.write('database-locked: chattr +i is not permitted here; the unwritable -wal test is skipped\n');

(immutable ? test : test.skip)('a reply that ends while the -wal file cannot be written (chattr +i for 3 s) is stored completed and whole once it can', async () => {
  service = await startTestService({ upstream, configToml: '[streaming]\ncheckpoint_interval_seconds = 0.2\n' });
  const chatId = randomUUID();
  upstream.enqueue({ kind: 'stream', content: WORDS, delayMs: 50 });
  const stream = await openChatStream(service.url, userTurn(chatId, 'Write through it'));
  await stream.readUntil((text) => text.includes('"delta":"w0 "'));
  const wal = `${service.databasePath}-wal`;
  expect(spawnSync('chattr', ['+i', wal]).status).toBe(0);
  try {
    const text = await stream.readToEnd();
    expect(text).toContain('"type":"finish"');
    expect(text).not.toContain('"type":"error"');
    expect((await reply(chatId))!.status).toBe('streaming');
    await new Promise((resolve) => setTimeout(resolve, 3_000 - 24 * 50));
  } finally {
    spawnSync('chattr', ['-i', wal]);
  }
  expect(await replyWhen(chatId, (row) => row.status === 'completed', 5_000)).toEqual({
    content: WORDS.join(''),
    status: 'completed',
  });
  expect(service.logs.some((line) => line.includes('could not store the reply yet: retrying'))).toBe(true);
}, 20_000);
