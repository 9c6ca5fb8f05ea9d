/**
 * `npm run db:copy` as an operator runs it, in a process of its own: a SQLite database made by the
 * migrations and filled raw is copied into a fresh PostgreSQL database and read back row by row.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../../src/build-service';
import { sampleTables, targetClient, targetRows, writeSampleSource, writeSqliteSource, type Tables } from '../support/copy-source';
import { describePostgres } from '../support/postgres-database';
import { runDbCopy } from '../support/run-db-copy';

const POSTGRESQL_MIGRATIONS = readdirSync(path.join(PROJECT_ROOT, 'prisma', 'postgresql', 'migrations'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();
const COPIED = ['ApiKey', 'Chat', 'Message', 'ChatPurge'] as const;

let directory: string;

beforeEach(() => {
  directory = mkdtempSync(path.join(tmpdir(), 'db-copy-'));
});

afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

const sourceUrl = (name = 'chat.db') => `file:${path.join(directory, name)}`;
/** `127.0.0.1:5432/lss_test_...`, as the summary names a target. */
const shortTarget = (url: string) => {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
};
const fileHash = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function readTarget(url: string): Promise<Partial<Tables>> {
  const client = targetClient(url);
  await client.connect();
  try {
    const tables: Partial<Tables> = {};
    for (const table of [...COPIED, 'InstanceLease'] as const) tables[table] = await targetRows(client, table);
    return tables;
  } finally {
    await client.end();
  }
}

test('--help prints the usage and exits 0', async () => {
  const help = await runDbCopy(['--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toMatch(/^Usage:\n {2}npm run db:copy -- --from file:PATH --to postgres:\/\//);
  expect(help.stderr).toBe('');
});

test.each([
  [[], 'db:copy needs --from and --to (see --help).'],
  [['--from', 'file:./a.db'], 'db:copy needs --from and --to (see --help).'],
  [['--from', './a.db', '--to', 'postgres://u@h/db'], '--from must be a SQLite database, a file: URL (not "./a.db").'],
  [['--from', 'file:./a.db', '--to', 'mysql://u:hunter22@h/db'], '--to must be a PostgreSQL database, a postgres:// or postgresql:// URL (not mysql://u:***@h/db).'],
  [['--from', 'file:./a.db', '--to', 'postgres://u@h/db', 'extra'], `Unexpected argument 'extra'. This command does not take positional arguments (see --help)`],
  [['--form', 'file:./a.db'], "Unknown option '--form' (see --help)"],
])('wrong arguments %j: exit 2 with one line', async (args, message) => {
  expect(await runDbCopy(args)).toEqual({ code: 2, stdout: '', stderr: `${message}\n` });
});

test('a source file that does not exist: exit 1 with one line, and no file is created', async () => {
  const missing = path.join(directory, 'missing.db');
  const run = await runDbCopy(['--from', `file:${missing}`, '--to', 'postgres://postgres@127.0.0.1:1/nothing']);
  expect(run).toEqual({ code: 1, stdout: '', stderr: `Cannot copy: the source database ${missing} does not exist\n` });
  expect(readdirSync(directory)).toEqual([]);
});

test('an unreachable target: exit 1 with one line that does not show the password', async () => {
  writeSqliteSource(path.join(directory, 'chat.db'), sampleTables());
  const run = await runDbCopy(['--from', sourceUrl(), '--to', 'postgres://copier:s3cret-pass@127.0.0.1:1/nothing']);
  expect(run).toEqual({ code: 1, stdout: '', stderr: 'Cannot copy: connect ECONNREFUSED 127.0.0.1:1\n' });
});

test('a source with a column the copy does not know is refused rather than copied without it', async () => {
  const sourcePath = path.join(directory, 'chat.db');
  writeSqliteSource(sourcePath, sampleTables());
  const database = new Database(sourcePath);
  database.exec(`ALTER TABLE "Message" ADD COLUMN "rating" INTEGER`);
  database.close();
  const run = await runDbCopy(['--from', sourceUrl(), '--to', 'postgres://postgres@127.0.0.1:1/nothing']);
  expect(run).toEqual({
    code: 1,
    stdout: '',
    stderr: "Cannot copy: the source's Message table has rating, which db:copy does not expect: its column list (src/store/copied-tables.ts) needs updating\n",
  });
});

test('a source with a table the copy does not know is refused rather than copied without it', async () => {
  const sourcePath = path.join(directory, 'chat.db');
  writeSqliteSource(sourcePath, sampleTables());
  const database = new Database(sourcePath);
  database.exec(`CREATE TABLE "Attachment" ("id" TEXT PRIMARY KEY)`);
  database.close();
  const run = await runDbCopy(['--from', sourceUrl(), '--to', 'postgres://postgres@127.0.0.1:1/nothing']);
  expect(run).toEqual({
    code: 1,
    stdout: '',
    stderr: 'Cannot copy: the source has tables db:copy does not know (Attachment): its table list (src/store/copied-tables.ts) needs updating\n',
  });
});

describePostgres('npm run db:copy into PostgreSQL', (databases) => {
  test('copies every key, chat, message and pending purge exactly, leaves the source as it was, and continues the sequence', async () => {
    const sourcePath = path.join(directory, 'chat.db');
    const tables = writeSampleSource(sourcePath);
    const before = fileHash(sourcePath);
    const target = await databases.create();

    // A session time zone far from UTC: a timestamp without a zone must not be read in it.
    const run = await runDbCopy(['--from', sourceUrl(), '--to', target], { PGOPTIONS: '-c TimeZone=Pacific/Auckland' });
    expect(run).toEqual({
      code: 0,
      stdout:
        `Applied ${POSTGRESQL_MIGRATIONS.length} migrations to the target: ${POSTGRESQL_MIGRATIONS.join(', ')}\n` +
        'Copied 3 rows of ApiKey.\nCopied 4 rows of Chat.\nCopied 14 rows of Message.\nCopied 1 row of ChatPurge.\n' +
        `Copied 3 keys, 4 chats, 14 messages, 1 chat purge from ${sourceUrl()} to ${shortTarget(target)}; counts verified.\n`,
      stderr: '',
    });

    const copied = await readTarget(target);
    const key = tables.ApiKey.find((row) => row.id === 'key-c')!;
    key.createdAt = '2026-11-19T07:00:00.000Z';
    for (const table of COPIED) expect({ [table]: copied[table] }).toEqual({ [table]: tables[table] });
    // A lease is the live state of a server: not copied.
    expect(copied.InstanceLease).toEqual([]);
    expect(fileHash(sourcePath)).toBe(before);

    const client = targetClient(target);
    await client.connect();
    try {
      const { rows } = await client.query(
        `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "updatedAt")
         VALUES ('next', 'key-a', 'chat-1', 'user', 'after the copy', 'completed', now()) RETURNING "seq"`,
      );
      expect(rows).toEqual([{ seq: 16 }]);
    } finally {
      await client.end();
    }
  }, 60_000);

  test('seqs of messages already purged are not handed out again', async () => {
    const sourcePath = path.join(directory, 'chat.db');
    writeSampleSource(sourcePath);
    const database = new Database(sourcePath);
    // The newest messages deleted: SQLite's AUTOINCREMENT still remembers seq 15.
    database.prepare(`DELETE FROM "Message" WHERE "seq" >= 12`).run();
    database.close();
    const target = await databases.create();

    const run = await runDbCopy(['--from', sourceUrl(), '--to', target]);
    expect(run.stdout).toMatch(/Copied 3 keys, 4 chats, 11 messages, 1 chat purge from .*; counts verified\.\n$/);
    const client = targetClient(target);
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT nextval(pg_get_serial_sequence('"Message"', 'seq')) AS seq`);
      expect(rows).toEqual([{ seq: 16 }]);
    } finally {
      await client.end();
    }
  }, 60_000);

  test('text holding U+0000 (which older releases stored) is copied with U+FFFD in its place, and the counts still verify', async () => {
    const sourcePath = path.join(directory, 'chat.db');
    writeSampleSource(sourcePath);
    const database = new Database(sourcePath);
    database.prepare(`UPDATE "Message" SET "content" = ? WHERE "seq" = 1`).run('a\u0000b\u0000');
    database.prepare(`UPDATE "Chat" SET "title" = ? WHERE "id" = 'chat-1' AND "ownerId" = 'key-a'`).run('t\u0000');
    database.close();
    const target = await databases.create();

    const run = await runDbCopy(['--from', sourceUrl(), '--to', target]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/Copied 3 keys, 4 chats, 14 messages, 1 chat purge from .*; counts verified\.\n$/);
    const client = targetClient(target);
    await client.connect();
    try {
      expect((await client.query(`SELECT "content" FROM "Message" WHERE "seq" = 1`)).rows).toEqual([{ content: 'a\uFFFDb\uFFFD' }]);
      expect((await client.query(`SELECT "title" FROM "Chat" WHERE "id" = 'chat-1' AND "ownerId" = 'key-a'`)).rows).toEqual([{ title: 't\uFFFD' }]);
    } finally {
      await client.end();
    }
  }, 60_000);

  test('a target that already holds rows is refused, and left as it was', async () => {
    writeSampleSource(path.join(directory, 'chat.db'));
    const target = await databases.create();
    expect((await runDbCopy(['--from', sourceUrl(), '--to', target])).code).toBe(0);
    const client = targetClient(target);
    await client.connect();
    await client.query(`DELETE FROM "Message"`);
    await client.end();
    const before = await readTarget(target);

    const again = await runDbCopy(['--from', sourceUrl(), '--to', target]);
    expect(again).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Cannot copy: the target database already holds rows (3 keys, 4 chats, 0 messages, 1 chat purge): db:copy only fills an empty database\n',
    });
    expect(await readTarget(target)).toEqual(before);
  }, 60_000);

  test('a source with migrations not applied is refused before the target is touched', async () => {
    const sourcePath = path.join(directory, 'chat.db');
    writeSampleSource(sourcePath);
    const database = new Database(sourcePath);
    database.prepare(`DELETE FROM "_prisma_migrations" WHERE "migration_name" = '20261201000000_counters_purges_and_leases'`).run();
    database.close();
    const target = await databases.create();

    const run = await runDbCopy(['--from', sourceUrl(), '--to', target]);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'Cannot copy: the source database has migrations not applied (20261201000000_counters_purges_and_leases): ' +
        `start the server on it once, or run \`DATABASE_URL=${sourceUrl()} npm run migrate\`\n`,
    });
    const client = targetClient(target);
    await client.connect();
    const { rows } = await client.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`);
    await client.end();
    expect(rows).toEqual([]);
  }, 60_000);

  test('copies a snapshot while another connection writes to the source, without waiting for it', async () => {
    const sourcePath = path.join(directory, 'chat.db');
    writeSampleSource(sourcePath);
    const writer = new Database(sourcePath);
    try {
      // Committed into the WAL only (no checkpoint), then a write left open, as a server's would be.
      writer.pragma('wal_autocheckpoint = 0');
      writer.prepare(`UPDATE "Chat" SET "title" = 'Renamed' WHERE "ownerId" = 'local'`).run();
      writer.exec('BEGIN IMMEDIATE');
      writer.prepare(`DELETE FROM "ApiKey" WHERE "id" = 'key-b'`).run();
      const target = await databases.create();

      const run = await runDbCopy(['--from', sourceUrl(), '--to', target]);
      expect(run.code).toBe(0);
      const copied = await readTarget(target);
      expect(copied.ApiKey!.map((row) => row.id)).toEqual(['key-a', 'key-b', 'key-c']);
      expect(copied.Chat!.find((row) => row.ownerId === 'local')!.title).toBe('Renamed');
    } finally {
      writer.close();
    }
  }, 60_000);
});
