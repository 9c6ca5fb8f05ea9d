/**
 * /readyz says whether the service can do its work. If the SQLite file is deleted or replaced
 * under a running server, SQLite keeps writing to the open file, which no longer has a name:
 * everything written is lost at the next start. The server must notice and say so.
 */
import { copyFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { getPath, postChat, userTurn } from '../support/chat-client';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream';
import { startTestService, type TestService } from '../support/test-service';

let upstream: FakeUpstream;
let service: TestService;

beforeEach(async () => {
  upstream = await startFakeUpstream();
  service = await startTestService({ upstream });
  expect((await postChat(service.url, userTurn(randomUUID(), 'Before'))).status).toBe(200);
  expect((await getPath(service.url, '/readyz')).json()).toEqual({ status: 'ready' });
});

afterEach(async () => {
  await service.close();
  await upstream.close();
});

async function expectNotReady(reason: RegExp) {
  const answer = await getPath(service.url, '/readyz');
  expect(answer.status).toBe(503);
  // Public route: the answer does not name files; the log does.
  expect(answer.json()).toEqual({ error: { code: 'service_unavailable', message: 'The database is not reachable.' } });
  const logged = service.logs.map((line) => JSON.parse(line)).find((line) => line.msg === 'database not reachable');
  expect(logged).toMatchObject({ level: 50, err: { message: expect.stringMatching(reason) } });
  expect(logged.err.message).toContain(service.databasePath);
}

test('answers 503 and logs an error once the data folder is deleted', async () => {
  rmSync(path.dirname(service.databasePath), { recursive: true, force: true });
  await expectNotReady(/is gone: writes since then are lost/);
});

test('answers 503 and logs an error once the file is replaced by another', async () => {
  renameSync(service.databasePath, `${service.databasePath}.moved`);
  copyFileSync(`${service.databasePath}.moved`, service.databasePath);
  await expectNotReady(/was replaced by another file/);
});
