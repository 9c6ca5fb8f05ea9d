/**
 * `npm run bench:scale` (after the build): does a request's cost depend on the size of the data?
 *
 * Seeds a database with 20,000 chats of 25 pairs plus one chat of 20,000 messages (about 1 M
 * messages), straight with SQL, and an "empty" one that holds only the chats the requests use;
 * starts the production build on each (auth on, the paced fake upstream) and times the same
 * requests on both, one at a time: a page of GET /api/chats (the first and a deeper one), a turn
 * on a 25-pair chat and on the 20,000-message chat (time to first token), and DELETE of a
 * 20,000-message chat with the purge of its messages. A hook in the service reports the longest
 * event-loop block during each. SQLite always; PostgreSQL too when BENCH_DATABASE_URL names a
 * server (a database is created there per seeding, and dropped after).
 *
 * Writes bench/scale-results.md (also printed; bench/scale-analysis.md, written by hand, is
 * appended to it). Every child process, temp file and database is
 * removed on exit, failure or Ctrl-C.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { migrateDatabase } from '../src/store/migrate-database';
import { describeMachine } from './machine';
import {
  createBenchDatabase,
  dropAllBenchDatabases,
  dropAllBenchDatabasesNow,
  dropBenchDatabase,
  readPostgresqlSettings,
} from './postgresql-server';
import { forkTs, killAllNow, nextMessage, stopAll, stopChild } from './processes';
import type { FromUpstream, ToUpstream } from './protocol';
import { ScaleClient } from './scale-client';
import { BIG_CHAT_PAIRS, cursorAt, deletes, LoopDelay, median, PAGE_LIMIT, RUNS, timed, WARMUP, type PhaseResult } from './scale-phases';
import { renderScaleReport, type DatabaseRun, type EngineName } from './scale-report';
import { newSeedKey, type Seeder } from './scale-seed';
import { PostgresqlSeeder } from './scale-seed-postgresql';
import { SqliteSeeder } from './scale-seed-sqlite';
import { startService, type ServiceProcess } from './service-process';

const TMP_DIR = path.join(__dirname, 'tmp');
const PRISMA_DIR = path.join(__dirname, '..', 'prisma');
const HOOK = path.join(__dirname, 'loop-delay-hook.cjs');
const FILLER_CHATS = 20_000;
const PAIRS = 25;
/** The newest chats: the pages listed and the 25-pair chats turned on (one each, WARMUP + RUNS). */
const PAGED_CHATS = 150;
/** The deeper page starts after this many chats (or as deep as the empty database allows). */
const DEEP_PAGE = 10_000;

let runDir: string | undefined;
let service: ServiceProcess | undefined;

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

const isUpstreamReady = (message: unknown): message is Extract<FromUpstream, { type: 'ready' }> => (message as FromUpstream).type === 'ready';
const isScriptSet = (message: unknown): message is Extract<FromUpstream, { type: 'script-set' }> => (message as FromUpstream).type === 'script-set';

interface Bench {
  upstream: ChildProcess;
  fake: Extract<FromUpstream, { type: 'ready' }>;
  runDir: string;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  mkdirSync(TMP_DIR, { recursive: true });
  runDir = mkdtempSync(path.join(TMP_DIR, 'scale-'));
  const serverUrl = process.env.BENCH_DATABASE_URL || undefined;
  const postgresqlSettings = serverUrl ? await readPostgresqlSettings(serverUrl) : undefined;
  const upstream = forkTs('paced-upstream.ts');
  const fake = await nextMessage(upstream, isUpstreamReady, 30_000, 'paced upstream start');
  const scriptSet = nextMessage(upstream, isScriptSet, 10_000, 'setting the upstream script');
  // Short replies with no gap: the time to first token is the service's, not the model's.
  upstream.send({ type: 'script', script: { deltas: 2, delayMs: 0, words: ['Sure', ', done.'] } } satisfies ToUpstream);
  await scriptSet;
  const bench: Bench = { upstream, fake, runDir };

  const runs: DatabaseRun[] = [];
  const engines: EngineName[] = serverUrl ? ['SQLite', 'PostgreSQL'] : ['SQLite'];
  if (!serverUrl) progress('bench:scale: BENCH_DATABASE_URL is not set: PostgreSQL is not measured');
  for (const engine of engines) {
    for (const size of ['empty', 'large'] as const) runs.push(await measureDatabase(bench, engine, size, serverUrl));
  }
  const analysisPath = path.join(__dirname, 'scale-analysis.md');
  const markdown = renderScaleReport({
    date: new Date(),
    machine: describeMachine(),
    postgresqlSettings,
    runSeconds: (Date.now() - startedAt) / 1000,
    runs,
    settings: { runs: RUNS, warmup: WARMUP, fillerChats: FILLER_CHATS, pairs: PAIRS, pagedChats: PAGED_CHATS, bigChatMessages: 2 * BIG_CHAT_PAIRS },
    analysis: existsSync(analysisPath) ? readFileSync(analysisPath, 'utf8') : undefined,
  });
  writeFileSync(path.join(__dirname, 'scale-results.md'), markdown);
  process.stdout.write(`${markdown}\n`);
  progress(`bench:scale: wrote bench/scale-results.md in ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
}

/** A fresh database of `size` on `engine`: seeded, served, measured, then removed. */
async function measureDatabase(bench: Bench, engine: EngineName, size: 'empty' | 'large', serverUrl: string | undefined): Promise<DatabaseRun> {
  const name = `${engine.toLowerCase()}-${size}`;
  const databaseUrl = engine === 'SQLite' ? `file:${path.join(bench.runDir, `${name}.db`)}` : await createBenchDatabase(serverUrl!, `scale_${size}`);
  try {
    await migrateDatabase(databaseUrl, PRISMA_DIR);
    const seeder: Seeder = engine === 'SQLite' ? new SqliteSeeder(databaseUrl.slice('file:'.length)) : await PostgresqlSeeder.open(databaseUrl);
    try {
      const seeded = await seed(seeder, size);
      progress(`bench:scale: ${name}: ${seeded.messages} messages seeded in ${(seeded.ms / 1000).toFixed(1)} s; starting the service`);
      const loopOut = path.join(bench.runDir, `${name}-loop.jsonl`);
      service = await startService(bench.runDir, bench.fake, {
        name,
        databaseUrl,
        expectFirstKey: false,
        environment: { NODE_OPTIONS: `--require ${HOOK}`, LOOP_DELAY_OUT: loopOut },
      });
      const client = new ScaleClient(service.port, seeded.key);
      try {
        const phases = await measureRequests(client, seeder, new LoopDelay(service, loopOut), seeded, size, name);
        return { engine, size, messages: seeded.messages, seedSeconds: seeded.ms / 1000, phases };
      } finally {
        client.close();
        await stopChild(service.child, 10_000);
        service = undefined;
      }
    } finally {
      await seeder.close();
    }
  } finally {
    if (engine === 'SQLite') for (const suffix of ['', '-wal', '-shm', '.lock']) rmSync(`${databaseUrl.slice('file:'.length)}${suffix}`, { force: true });
    else await dropBenchDatabase(databaseUrl);
  }
}

interface Seeded {
  key: string;
  ownerId: string;
  pagedChats: string[];
  bigChat: string;
  messages: number;
  ms: number;
}

/** The key, the filler (large only, oldest), the paged 25-pair chats, then the 20,000-message chat (newest). */
async function seed(seeder: Seeder, size: 'empty' | 'large'): Promise<Seeded> {
  const startedAt = Date.now();
  const key = newSeedKey();
  await seeder.insertKey(key);
  const ownerId = key.id;
  const now = Date.now();
  const day = 24 * 3600 * 1000;
  if (size === 'large') {
    await seeder.insertChats({ ownerId, count: FILLER_CHATS, pairs: PAIRS, firstAt: new Date(now - 60 * day), stepMs: 60_000 });
  }
  const pagedChats = await seeder.insertChats({ ownerId, count: PAGED_CHATS, pairs: PAIRS, firstAt: new Date(now - 2 * day), stepMs: 60_000 });
  const [bigChat] = await seeder.insertChats({ ownerId, count: 1, pairs: BIG_CHAT_PAIRS, firstAt: new Date(now - day), stepMs: 0 });
  await seeder.settle();
  return { key: key.key, ownerId, pagedChats, bigChat: bigChat!, messages: await seeder.countAllMessages(), ms: Date.now() - startedAt };
}

async function measureRequests(client: ScaleClient, seeder: Seeder, loop: LoopDelay, seeded: Seeded, size: 'empty' | 'large', name: string): Promise<PhaseResult[]> {
  const phases: PhaseResult[] = [];
  const step = async (phase: Promise<PhaseResult>) => {
    const result = await phase;
    phases.push(result);
    progress(`  ${name}: ${result.request}: median ${median(result.runsMs).toFixed(2)} ms, longest loop block ${result.loopBlockMs?.toFixed(1) ?? 'n/a'} ms`);
  };
  await step(timed(`GET /api/chats?limit=${PAGE_LIMIT}, first page`, loop, async () => (await client.listChats(PAGE_LIMIT)).ms));
  const depth = size === 'large' ? DEEP_PAGE : PAGED_CHATS - PAGE_LIMIT;
  const cursor = await cursorAt(client, depth);
  await step(timed(`GET /api/chats?limit=${PAGE_LIMIT}, deeper page (after ${depth} chats)`, loop, async () => (await client.listChats(PAGE_LIMIT, cursor)).ms));
  // Newest first: a turn moves its chat to the top of the list, so the pages were read first.
  await step(timed(`POST /api/chat on a ${PAIRS}-pair chat: time to first token`, loop, async (run) => (await client.turn(seeded.pagedChats.at(-1 - run)!)).ttftMs));
  await step(timed(`POST /api/chat on the ${2 * BIG_CHAT_PAIRS}-message chat: time to first token`, loop, async () => (await client.turn(seeded.bigChat)).ttftMs));
  const deleted = await deletes(client, seeder, loop, seeded.ownerId);
  await step(Promise.resolve(deleted.response));
  await step(Promise.resolve(deleted.purge));
  return phases;
}

let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    if (service) await stopChild(service.child, 5000);
    await stopAll(5000);
    await dropAllBenchDatabases();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => void cleanUp().finally(() => process.exit(code)));
}
process.on('exit', () => {
  killAllNow();
  dropAllBenchDatabasesNow();
  if (runDir) rmSync(runDir, { recursive: true, force: true });
});

main()
  .then(() => cleanUp())
  .then(() => process.exit(0))
  .catch((error: unknown) => {
    progress(`bench:scale failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    void cleanUp().finally(() => process.exit(1));
  });
