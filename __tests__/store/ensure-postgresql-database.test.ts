import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { ensurePostgresqlDatabase } from '../../src/store/ensure-postgresql-database';
import { describePostgres, POSTGRES_ADMIN_URL } from '../support/postgres-database';

const made: string[] = [];

afterAll(async () => {
  const admin = new Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  for (const name of made.splice(0)) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
});

function urlOf(name: string): string {
  made.push(name);
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.href;
}

describePostgres('ensurePostgresqlDatabase', (databases) => {
  test('an existing database is left alone', async () => {
    expect(await ensurePostgresqlDatabase(databases.url, 5_000)).toBe(false);
  });

  test('a missing one is created; of eight instances asking at the same moment, one creates it and none fails', async () => {
    for (let round = 0; round < 3; round += 1) {
      const url = urlOf(`lss_test_ensure_${randomBytes(5).toString('hex')}`);
      const created = await Promise.all(Array.from({ length: 8 }, () => ensurePostgresqlDatabase(url, 5_000)));
      expect(created.filter(Boolean)).toHaveLength(1);
      const client = new Client({ connectionString: url });
      await client.connect();
      await client.end();
    }
  });
});
