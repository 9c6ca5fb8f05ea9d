/**
 * `npm run migrate` as an operator runs it, on each engine, and `[database] migrate_on_start`:
 * a deploy that migrates as a step of its own starts servers that never migrate, and refuse to
 * run on a database that is behind.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { describePostgres } from '../support/postgres-database';
import { runMigrate } from '../support/run-migrate';
import { listeningPort, serviceEnvironment, startServer, stopServers } from '../support/server-process';

const migrationsOf = (folder: string) =>
  readdirSync(path.join(PROJECT_ROOT, 'prisma', folder), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
const SQLITE_MIGRATIONS = migrationsOf('migrations');
const POSTGRESQL_MIGRATIONS = migrationsOf(path.join('postgresql', 'migrations'));

const appliedLine = (names: string[]) => `Applied ${names.length} migration${names.length === 1 ? '' : 's'}: ${names.join(', ')}\n`;
const UP_TO_DATE = 'No migrations to apply: the database is up to date.\n';

let directory: string;

beforeEach(() => {
  directory = mkdtempSync(path.join(tmpdir(), 'migrate-cli-'));
});

afterEach(async () => {
  await stopServers();
  rmSync(directory, { recursive: true, force: true });
});

test('npm run migrate on a SQLite URL creates and migrates the file, then finds nothing to apply', async () => {
  const databasePath = path.join(directory, 'data', 'chat.db');
  const first = await runMigrate({ DATABASE_URL: `file:${databasePath}` }, 'npm');
  expect(first).toEqual({ code: 0, stdout: appliedLine(SQLITE_MIGRATIONS), stderr: '' });
  expect(existsSync(databasePath)).toBe(true);
  const second = await runMigrate({ DATABASE_URL: `file:${databasePath}` }, 'npm');
  expect(second).toEqual({ code: 0, stdout: UP_TO_DATE, stderr: '' });
}, 60_000);

test('with migrate_on_start = false, a server on an unmigrated SQLite database refuses to start with one line, and starts once migrated', async () => {
  const databasePath = path.join(directory, 'data', 'chat.db');
  const configPath = path.join(directory, 'config.toml');
  writeFileSync(configPath, '[database]\nmigrate_on_start = false\n\n[auth]\nenabled = false\n');
  const environment = serviceEnvironment({ DATABASE_URL: `file:${databasePath}`, CONFIG_PATH: configPath, PORT: '0', LOG_LEVEL: 'info' });

  const refused = startServer(directory, environment);
  expect(await refused.waitForExit(15_000)).toEqual({ code: 1, signal: null });
  expect(refused.stderr()).toBe(
    `Cannot start: The database has migrations not applied (${SQLITE_MIGRATIONS.join(', ')}) and [database] migrate_on_start is false: ` +
      'run `npm run migrate` first, or set migrate_on_start = true.\n',
  );

  expect((await runMigrate({ DATABASE_URL: `file:${databasePath}` })).code).toBe(0);
  const started = startServer(directory, environment);
  expect(await listeningPort(started)).toBeGreaterThan(0);
}, 60_000);

test('a server whose PostgreSQL cannot be reached refuses to start with one line naming where and why, never the password', async () => {
  const server = startServer(directory, serviceEnvironment({ DATABASE_URL: 'postgres://chat:secret@127.0.0.1:1/chat', PORT: '0' }));
  expect(await server.waitForExit(15_000)).toEqual({ code: 1, signal: null });
  expect(server.stderr()).toBe('Cannot start: Cannot connect to PostgreSQL at 127.0.0.1:1/chat: connect ECONNREFUSED 127.0.0.1:1\n');
  expect(server.logs).toEqual([]);
});

describePostgres('npm run migrate on PostgreSQL', (databases) => {
  test('applies every migration, then finds nothing to apply', async () => {
    const first = await runMigrate({ DATABASE_URL: databases.url }, 'npm');
    expect(first).toEqual({ code: 0, stdout: appliedLine(POSTGRESQL_MIGRATIONS), stderr: '' });
    const second = await runMigrate({ DATABASE_URL: databases.url }, 'npm');
    expect(second).toEqual({ code: 0, stdout: UP_TO_DATE, stderr: '' });
  }, 60_000);

});

test('when PostgreSQL cannot be reached, npm run migrate fails with one line and exit code 1', async () => {
  const unreachable = await runMigrate({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nothing' });
  expect(unreachable).toEqual({ code: 1, stdout: '', stderr: 'Cannot migrate: connect ECONNREFUSED 127.0.0.1:1\n' });
});
