/**
 * Copies a SQLite database into an empty PostgreSQL one, for moving a deployment from one engine
 * to the other: `npm run db:copy -- --from file:./data/chat.db --to postgres://user@host:5432/db`.
 * Takes both databases from its arguments only (not DATABASE_URL), so that neither can be named
 * by mistake. Exit code 0 when the copy is committed and verified, 1 when it is refused or fails,
 * 2 for wrong arguments.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { copyDatabase, describeCounts } from '../store/copy-database';

const USAGE = `Usage:
  npm run db:copy -- --from file:PATH --to postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE

Copies every API key, chat, message and pending chat purge from the SQLite database to the
PostgreSQL database, which is migrated first and must hold no rows. The source is only read, in
one consistent snapshot, so a server may keep running on it; what it writes after the snapshot
is not copied.`;

/** The project's root, where `prisma/` lives, from src/cli or dist/cli. */
const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { from: { type: 'string' }, to: { type: 'string' }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const { from, to } = values;
  if (!from || !to) return fail('db:copy needs --from and --to (see --help).', 2);
  if (!from.startsWith('file:')) return fail(`--from must be a SQLite database, a file: URL (not ${redact(from)}).`, 2);
  if (!/^postgres(ql)?:\/\//.test(to) || !URL.canParse(to)) {
    return fail(`--to must be a PostgreSQL database, a postgres:// or postgresql:// URL (not ${redact(to)}).`, 2);
  }
  try {
    const copied = await copyDatabase({ from, to, prismaDir: path.join(PROJECT_ROOT, 'prisma'), log: (line) => process.stdout.write(`${line}\n`) });
    process.stdout.write(`Copied ${describeCounts(copied.counts)} from ${from} to ${describeTarget(to)}; counts verified.\n`);
    return 0;
  } catch (error) {
    return fail(`Cannot copy: ${hidePassword(describeError(error), to)}`, 1);
  }
}

/** `host:5432/db`: where the copy went, without the user or password. */
function describeTarget(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
}

/** The message of an error on one line; pg's connection errors may be an AggregateError without one. */
function describeError(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  if (!message && error instanceof AggregateError) message = error.errors.map(describeError).join('; ');
  if (!message && error instanceof Error && 'code' in error) message = String(error.code);
  return message.replace(/\s*\n\s*/g, ' ');
}

function hidePassword(text: string, url: string): string {
  const password = URL.canParse(url) ? new URL(url).password : '';
  if (!password) return text;
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // A malformed escape: the password is hidden as written.
  }
  return [password, decoded].reduce((hidden, secret) => hidden.split(secret).join('***'), text);
}

function redact(url: string): string {
  if (!URL.canParse(url)) return JSON.stringify(url.length > 60 ? `${url.slice(0, 57)}...` : url);
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.href;
}

/** Errors go to stderr, on one line, so stdout holds only what was done. */
function fail(message: string, exitCode: number): number {
  process.stderr.write(`${message}\n`);
  return exitCode;
}

main().then(
  (exitCode) => process.exit(exitCode),
  (error: unknown) => {
    // parseArgs refuses unknown options and positionals with a code of its own.
    const usage = error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS');
    process.exit(fail(usage ? `${describeError(error)} (see --help)` : `Cannot copy: ${describeError(error)}`, usage ? 2 : 1));
  },
);
