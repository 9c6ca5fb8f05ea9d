import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { PROJECT_ROOT } from '../../src/build-service';

/** The server the PostgreSQL tests use; they create databases of their own on it and drop them. */
export const POSTGRES_ADMIN_URL = process.env.TEST_DATABASE_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres';

export interface PostgresDatabases {
  /** URL of this test file's database, created empty before its tests. */
  readonly url: string;
  /** Creates another empty database, dropped with the file's; returns its URL. */
  create(): Promise<string>;
}

/**
 * `describe` for tests that need PostgreSQL: before them, a fresh database with a unique name;
 * after them, passed or failed, every database made for them is dropped. Where no PostgreSQL
 * answers at TEST_DATABASE_URL, the tests are skipped (see checkPostgresOnce).
 */
export function describePostgres(title: string, body: (databases: PostgresDatabases) => void): void {
  if (postgresUnreachable() !== undefined) {
    describe.skip(title, () => body({ url: '', create: () => Promise.reject(new Error('skipped')) }));
    return;
  }
  const created: string[] = [];
  let fileUrl: string | undefined;
  const databases: PostgresDatabases = {
    get url() {
      if (!fileUrl) throw new Error('the database is created in beforeAll');
      return fileUrl;
    },
    async create() {
      const url = await createPostgresDatabase();
      created.push(url);
      return url;
    },
  };
  describe(title, () => {
    beforeAll(async () => {
      fileUrl = await databases.create();
    });
    afterAll(async () => {
      await dropPostgresDatabases(created.splice(0));
    });
    body(databases);
  });
}

/** Creates an empty database with a unique name (`lss_test_…`) on POSTGRES_ADMIN_URL; returns its URL. */
export async function createPostgresDatabase(): Promise<string> {
  const name = `lss_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await withAdmin((admin) => admin.query(`CREATE DATABASE "${name}"`));
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.href;
}

/** Drops the databases at `urls` (made by createPostgresDatabase), ending any connection still open to them. */
export async function dropPostgresDatabases(urls: string[]): Promise<void> {
  if (urls.length === 0) return;
  // FORCE ends connections a failed test left open (PostgreSQL 13 and later).
  await withAdmin(async (admin) => {
    for (const url of urls) {
      const name = decodeURIComponent(new URL(url).pathname.slice(1));
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
  });
}

async function withAdmin<T>(run: (admin: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    return await run(admin);
  } finally {
    await admin.end();
  }
}

/** Set by the global setup for the whole run, so that its one line is said once. */
const AVAILABILITY = 'LSS_TEST_POSTGRES_UNREACHABLE';

/**
 * For jest's globalSetup: checks once per run whether PostgreSQL answers. Where it does not, says
 * so in one line and lets its tests be skipped, or fails the run when REQUIRE_POSTGRES=1.
 */
export function checkPostgresOnce(): void {
  const unreachable = probe(POSTGRES_ADMIN_URL);
  process.env[AVAILABILITY] = unreachable ?? '';
  if (unreachable === undefined) return;
  const where = `no PostgreSQL answers at ${redact(POSTGRES_ADMIN_URL)} (${unreachable})`;
  if (process.env.REQUIRE_POSTGRES === '1') throw new Error(`PostgreSQL tests cannot run: ${where}, and REQUIRE_POSTGRES=1.`);
  process.stderr.write(`\nPostgreSQL tests skipped: ${where}; set TEST_DATABASE_URL to one.\n`);
}

/** Why PostgreSQL does not answer, or undefined when it does (probed here if the global setup did not run). */
export function postgresUnreachable(): string | undefined {
  if (process.env[AVAILABILITY] === undefined) checkPostgresOnce();
  return process.env[AVAILABILITY] || undefined;
}

/**
 * Connects once, in a child process: the choice between `describe` and `describe.skip` has to be
 * made while a test file loads, synchronously. Returns why it failed, or undefined.
 */
function probe(url: string): string | undefined {
  const script = `const { Client } = require('pg');
const client = new Client({ connectionString: process.argv[1], connectionTimeoutMillis: 3000 });
client.connect().then(() => client.end()).then(() => process.exit(0), (error) => { process.stderr.write(error.message || error.code || String(error)); process.exit(1); });`;
  const result = spawnSync(process.execPath, ['-e', script, url], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 10_000 });
  if (result.status === 0) return undefined;
  return result.stderr.trim().split('\n')[0] || (result.error?.message ?? 'no answer');
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.href;
}
