/**
 * The server as operators start it on PostgreSQL: real processes, a database that does not exist
 * yet, and two instances started at the same instant sharing it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { describePostgres, POSTGRES_ADMIN_URL } from './support/postgres-database';
import { FIRST_KEY_LINE, listeningPort, serviceEnvironment, startServer, stopServers, type ServerProcess } from './support/server-process';

const MIGRATIONS = ['20261130120000_init', '20261201000000_counters_purges_and_leases', '20261202000000_api_key_change_notices', '20261203000000_client_message_ids'];

let directory: string;
const databasesToDrop: string[] = [];

beforeEach(() => {
  directory = mkdtempSync(path.join(tmpdir(), 'postgresql-process-'));
});

afterEach(async () => {
  await stopServers();
  rmSync(directory, { recursive: true, force: true });
});

afterAll(async () => {
  const admin = new Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  for (const name of databasesToDrop.splice(0)) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
});

/** The URL of a database that does not exist yet (dropped after the file, if a test made it). */
function newDatabaseUrl(): string {
  const name = `lss_test_new_${randomBytes(5).toString('hex')}`;
  databasesToDrop.push(name);
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.href;
}

async function rows<Row>(url: string, sql: string): Promise<Row[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as Row[];
  } finally {
    await client.end();
  }
}

async function turn(port: number, key: string, chatId: string, content: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ chatId, messages: [{ role: 'user', content }] }),
  });
  return { status: response.status, text: await response.text() };
}

describePostgres('the server on PostgreSQL', () => {
  test('two instances started at the same instant on a database that does not exist both come up, migrate it once and make one first key', async () => {
    const url = newDatabaseUrl();
    const configPath = path.join(directory, 'config.toml');
    writeFileSync(configPath, '[simulator]\ndelay_ms = 0\n');
    const start = (instanceId: string) =>
      startServer(directory, serviceEnvironment({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: url, INSTANCE_ID: instanceId, CONFIG_PATH: configPath }));
    const servers: ServerProcess[] = [start('instance-a'), start('instance-b')];
    const ports = await Promise.all(servers.map((server) => listeningPort(server, 30_000)));

    const ready = servers.map((server) => server.logs.find((line) => line.msg === 'database ready')!);
    expect(ready.map((line) => [line.engine, line.database, line.instanceId])).toEqual([
      ['postgresql', `127.0.0.1:5432${new URL(url).pathname}`, 'instance-a'],
      ['postgresql', `127.0.0.1:5432${new URL(url).pathname}`, 'instance-b'],
    ]);
    // Each migration was applied by one of them, and recorded once.
    expect(ready.flatMap((line) => line.appliedMigrations as string[]).sort()).toEqual(MIGRATIONS);
    expect(await rows(url, `SELECT "migration_name" FROM "_prisma_migrations" ORDER BY "migration_name"`)).toEqual(
      MIGRATIONS.map((migration_name) => ({ migration_name })),
    );
    // Exactly one of them created (and showed) the first key.
    const shown = servers.map((server) => FIRST_KEY_LINE.exec(server.stderr())?.[1]).filter(Boolean);
    expect(shown).toHaveLength(1);
    expect(await rows(url, `SELECT "name" FROM "ApiKey"`)).toEqual([{ name: 'default' }]);
    expect(JSON.stringify(servers.map((server) => server.logs))).not.toContain('postgres@');

    // A chat started on one instance continues on the other, which sees its history.
    const key = shown[0]!;
    const chatId = randomUUID();
    expect((await turn(ports[0]!, key, chatId, 'Hello from A')).status).toBe(200);
    expect((await turn(ports[1]!, key, chatId, 'Hello from B')).status).toBe(200);
    const history = await fetch(`http://127.0.0.1:${ports[1]}/api/chats/${chatId}/messages`, { headers: { authorization: `Bearer ${key}` } });
    const body = (await history.json()) as { messages: Array<{ role: string; content: string; status: string }> };
    expect(body.messages.map((message) => [message.role, message.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
      ['user', 'completed'],
      ['assistant', 'completed'],
    ]);
    expect(body.messages[2]!.content).toBe('Hello from B');
    expect(
      await rows(url, `SELECT "instanceId" FROM "Message" WHERE "role" = 'assistant' ORDER BY "seq"`),
    ).toEqual([{ instanceId: 'instance-a' }, { instanceId: 'instance-b' }]);
    for (const [index, port] of ports.entries()) {
      const readiness = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect([index, readiness.status]).toEqual([index, 200]);
    }

    // A clean stop gives the lease up.
    for (const server of servers) server.child.kill('SIGTERM');
    expect(await Promise.all(servers.map((server) => server.waitForExit(15_000)))).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
    expect(await rows(url, `SELECT "instanceId" FROM "InstanceLease"`)).toEqual([]);
  }, 60_000);
});
