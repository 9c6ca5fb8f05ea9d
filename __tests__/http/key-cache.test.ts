/**
 * On PostgreSQL a serving process keeps the keys it has checked, and drops them when the database
 * tells it of a change (a trigger on ApiKey, heard on a connection of its own). These tests drive
 * the service over HTTP and change keys from outside it: another instance, plain SQL, a lock, a
 * cut connection.
 */
import { Client } from 'pg';
import { eventually } from '../support/chat-client';
import { describePostgres } from '../support/postgres-database';
import { startTestService, type TestService } from '../support/test-service';

const services: TestService[] = [];

afterEach(async () => {
  for (const service of services.splice(0).reverse()) await service.close();
});

async function start(reuseDatabase?: string): Promise<TestService> {
  const service = await startTestService({ auth: true, ...(reuseDatabase ? { reuseDatabase } : { engine: 'postgresql' as const }) });
  services.push(service);
  await cacheServing(service);
  return service;
}

/** Resolves once the service's log says its key cache serves (after `after` such lines). */
function cacheServing(service: TestService, after = 0): Promise<true> {
  return eventually(() => (service.logs.filter((line) => line.includes('API keys are cached')).length > after ? true : undefined), 10_000);
}

async function listChats(service: TestService, key: string): Promise<number> {
  return (await fetch(`${service.url}/api/chats`, { headers: { authorization: `Bearer ${key}` } })).status;
}

async function sql(service: TestService): Promise<Client> {
  const client = new Client(service.databaseUrl);
  await client.connect();
  return client;
}

describePostgres('API keys kept by a serving process', () => {
  test('a key revoked on another instance is refused here as soon as the notice arrives', async () => {
    const first = await start();
    const second = await start(first.databaseUrl);
    const { key, record } = await first.keys!.create('carol');
    expect(await listChats(first, key)).toBe(200);
    expect(await listChats(first, key)).toBe(200);

    await second.keys!.revoke(record.id);

    await eventually(async () => ((await listChats(first, key)) === 401 ? true : undefined), 1_000);
    expect(await listChats(second, key)).toBe(401);
  });

  test("a key revoked by an operator's SQL is refused; a key deleted is unknown", async () => {
    const service = await start();
    const revoked = await service.keys!.create('revoked-by-sql');
    const deleted = await service.keys!.create('deleted-by-sql');
    expect(await listChats(service, revoked.key)).toBe(200);
    expect(await listChats(service, deleted.key)).toBe(200);

    await service.execute('UPDATE "ApiKey" SET "revokedAt" = CURRENT_TIMESTAMP WHERE "id" = ?', revoked.record.id);
    await service.execute('DELETE FROM "ApiKey" WHERE "id" = ?', deleted.record.id);

    await eventually(async () => ((await listChats(service, revoked.key)) === 401 ? true : undefined), 1_000);
    await eventually(async () => ((await listChats(service, deleted.key)) === 401 ? true : undefined), 1_000);
  });

  test('a key checked before needs no query: it is accepted while ApiKey is locked, when a key not seen yet waits', async () => {
    const service = await start();
    const seen = await service.keys!.create('seen');
    const unseen = await service.keys!.create('unseen');
    expect(await listChats(service, seen.key)).toBe(200);
    const locker = await sql(service);
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE "ApiKey" IN ACCESS EXCLUSIVE MODE');
      let unseenAnswered = false;
      const waiting = listChats(service, unseen.key).then((status) => {
        unseenAnswered = true;
        return status;
      });
      expect(await listChats(service, seen.key)).toBe(200);
      expect(unseenAnswered).toBe(false);
      await locker.query('COMMIT');
      expect(await waiting).toBe(200);
    } finally {
      await locker.end();
    }
  });

  test('with its listening connection cut, every check queries the database until it listens again', async () => {
    const service = await start();
    const { key, record } = await service.keys!.create('dave');
    expect(await listChats(service, key)).toBe(200);
    const admin = await sql(service);
    try {
      const { rows } = await admin.query(
        `SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN lss_api_key_changes'`,
      );
      expect(rows).toEqual([{ cut: true }]);
      await eventually(() => (service.logs.some((line) => line.includes('API keys are no longer cached')) ? true : undefined));
      // No one hears this notice; the next check reads the row.
      await admin.query('UPDATE "ApiKey" SET "revokedAt" = CURRENT_TIMESTAMP WHERE "id" = $1', [record.id]);
      expect(await listChats(service, key)).toBe(401);

      // The next probe listens again (at most one interval, 5 s, later), and keys are kept again.
      await cacheServing(service, 1);
      const { key: next, record: nextRecord } = await service.keys!.create('erin');
      expect(await listChats(service, next)).toBe(200);
      await admin.query('UPDATE "ApiKey" SET "revokedAt" = CURRENT_TIMESTAMP WHERE "id" = $1', [nextRecord.id]);
      await eventually(async () => ((await listChats(service, next)) === 401 ? true : undefined), 1_000);
    } finally {
      await admin.end();
    }
  });
});
