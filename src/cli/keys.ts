/**
 * Manages API keys: `keys create --name NAME`, `keys list`, `keys revoke ID`; add `--json` for
 * machine-readable output. Works on the database named by DATABASE_URL (and CONFIG_PATH), like
 * the server, reading `.env` from the working directory as the server does.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ApiKeys, type ApiKeyRecord } from '../auth/api-keys';
import { PROJECT_ROOT } from '../build-service';
import { loadConfig } from '../config/load-config';
import { openStore } from '../store/open-store';

const USAGE = `Usage:
  npm run keys -- create --name NAME [--json]
  npm run keys -- list [--json]
  npm run keys -- revoke ID [--json]`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { name: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  const [command, id] = positionals;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!command) return fail(USAGE, 2, 'usage');

  // The server's settings may live in .env: without it a key would go into another database.
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig(path.join(PROJECT_ROOT, 'config', 'default.toml'), process.env);
  const { store, keys: keyStore } = await openStore({
    databaseUrl: config.database.url,
    prismaDir: path.join(PROJECT_ROOT, 'prisma'),
    lockWaitMs: config.database.lock_wait_seconds * 1000,
    // Keys are managed beside a running server, which owns a SQLite file.
    owner: false,
    migrate: config.database.migrate_on_start,
    poolSize: 2,
    statementTimeoutMs: config.database.statement_timeout_ms,
  });
  const keys = new ApiKeys(keyStore);
  try {
    const print = (json: unknown, text: string) => process.stdout.write(`${values.json ? JSON.stringify(json) : text}\n`);
    if (command === 'create') {
      const name = values.name?.trim();
      if (!name) return fail('create needs --name NAME', 2, 'usage');
      const { key, record } = await keys.create(name);
      print({ ...describe(record), key }, `Created key ${record.id} (${name}):\n\n  ${key}\n\nStore it now: it is not shown again.`);
    } else if (command === 'list') {
      const records = await keys.list();
      print(records.map(describe), records.map((record) => describeLine(record)).join('\n') || 'No keys.');
    } else if (command === 'revoke') {
      if (!id) return fail('revoke needs the key id (see list)', 2, 'usage');
      const record = await keys.revoke(id);
      if (!record) return fail(`No key has the id ${id}.`, 1, 'key_not_found');
      print(describe(record), `Revoked key ${record.id} (${record.name}).`);
    } else {
      return fail(`Unknown command "${command}".\n${USAGE}`, 2, 'usage');
    }
    return 0;
  } finally {
    await store.close();
  }
}

function describe(record: ApiKeyRecord) {
  return {
    id: record.id,
    name: record.name,
    prefix: record.prefix,
    createdAt: record.createdAt.toISOString(),
    revokedAt: record.revokedAt?.toISOString() ?? null,
  };
}

function describeLine(record: ApiKeyRecord): string {
  const state = record.revokedAt ? `revoked ${record.revokedAt.toISOString()}` : 'active';
  return `${record.id}  ${record.prefix}…  ${record.name}  created ${record.createdAt.toISOString()}  ${state}`;
}

/**
 * Errors go to stderr, so stdout holds only results; with --json they take the API's error shape,
 * so a script can read them too.
 */
function fail(message: string, exitCode: number, code: string): number {
  const json = process.argv.includes('--json');
  process.stderr.write(`${json ? JSON.stringify({ error: { code, message } }) : message}\n`);
  return exitCode;
}

main().then(
  (exitCode) => process.exit(exitCode),
  (error: unknown) => {
    // parseArgs refuses unknown options with a code of its own; anything else is unexpected.
    const usage = error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS');
    process.exit(fail(error instanceof Error ? error.message : String(error), usage ? 2 : 1, usage ? 'usage' : 'internal_error'));
  },
);
