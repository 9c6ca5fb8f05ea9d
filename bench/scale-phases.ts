import { existsSync, readFileSync } from 'node:fs';
import type { ScaleClient } from './scale-client';
import type { Seeder } from './scale-seed';
import type { ServiceProcess } from './service-process';

/** Measured runs of each request (their median is the figure), after WARMUP runs not counted. */
export const RUNS = 20;
export const WARMUP = 5;
/** 20,000-message chats deleted, each seeded just before, after one not counted. */
export const DELETES = 5;
/** The big chat: 10,000 pairs. */
export const BIG_CHAT_PAIRS = 10_000;
export const PAGE_LIMIT = 50;

/** One request's runs (ms), and what held the service's event loop longest while they ran. */
export interface PhaseResult {
  request: string;
  runsMs: number[];
  loopBlockMs: number | null;
  /** The longest single SQLite statement on the service's event loop (0 on PostgreSQL). */
  statementMs: number | null;
  /** That statement's SQL ('' when none). */
  statementSql: string;
  /** The longest garbage-collection pause. */
  gcMs: number | null;
}

/** What the hook saw between two readings; null when it did not answer. */
export interface LoopReading {
  blockMs: number;
  statementMs: number;
  statementSql: string;
  gcMs: number;
}

function worse(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.max(a, b);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** What the service's loop-delay hook (loop-delay-hook.cjs) reports on SIGUSR2, resetting it. */
export class LoopDelay {
  constructor(
    private readonly service: ServiceProcess,
    private readonly outPath: string,
  ) {}

  /**
   * Since the last call: the longest delay of the service's 1 ms timer less that 1 ms (how long
   * the loop was held at most), the longest SQLite statement and the longest GC pause. null when
   * the hook did not answer.
   */
  async take(): Promise<LoopReading | null> {
    const lines = () => (existsSync(this.outPath) ? readFileSync(this.outPath, 'utf8').trim().split('\n').filter(Boolean) : []);
    const before = lines().length;
    this.service.child.kill('SIGUSR2');
    for (let waited = 0; waited < 5000; waited += 10) {
      const now = lines();
      if (now.length > before) {
        const line = JSON.parse(now.at(-1)!) as { maxMs: number; statementMs: number; statementSql?: string; gcMs: number };
        return { blockMs: Math.max(0, line.maxMs - 1), statementMs: line.statementMs, statementSql: line.statementSql ?? '', gcMs: line.gcMs };
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return null;
  }
}

/** Runs `once` WARMUP times, then RUNS times measured; the loop delay covers the measured runs. */
export async function timed(request: string, loop: LoopDelay, once: (run: number) => Promise<number>): Promise<PhaseResult> {
  for (let run = 0; run < WARMUP; run++) await once(run);
  await loop.take();
  const runsMs: number[] = [];
  for (let run = WARMUP; run < WARMUP + RUNS; run++) runsMs.push(await once(run));
  const reading = await loop.take();
  return {
    request,
    runsMs,
    loopBlockMs: reading?.blockMs ?? null,
    statementMs: reading?.statementMs ?? null,
    statementSql: reading?.statementSql ?? '',
    gcMs: reading?.gcMs ?? null,
  };
}

/** The cursor of the page that starts after `depth` chats, following the pages from the first. */
export async function cursorAt(client: ScaleClient, depth: number): Promise<string> {
  let cursor: string | null = null;
  for (let skipped = 0; skipped < depth; skipped += PAGE_LIMIT) {
    const page = await client.listChats(PAGE_LIMIT, cursor);
    if (!page.nextCursor) throw new Error(`only ${skipped + page.chats} chats: no page after ${depth}`);
    cursor = page.nextCursor;
  }
  return cursor!;
}

/**
 * DELETE of a 20,000-message chat, then the purge of its messages: each chat is seeded just
 * before its delete (so the database holds one such chat at a time besides the rest), deleted,
 * and its messages counted every 10 ms until none is left.
 */
export async function deletes(
  client: ScaleClient,
  seeder: Seeder,
  loop: LoopDelay,
  ownerId: string,
): Promise<{ response: PhaseResult; purge: PhaseResult }> {
  const responseMs: number[] = [];
  const purgeMs: number[] = [];
  let loopBlockMs: number | null = 0;
  let statementMs: number | null = 0;
  let statementSql = '';
  let gcMs: number | null = 0;
  for (let run = 0; run <= DELETES; run++) {
    const [chatId] = await seeder.insertChats({ ownerId, count: 1, pairs: BIG_CHAT_PAIRS, firstAt: new Date(), stepMs: 0 });
    await seeder.settle();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await loop.take();
    const sentAt = performance.now();
    const ms = await client.deleteChat(chatId!);
    while ((await seeder.countMessages(ownerId, chatId!)) > 0) {
      if (performance.now() - sentAt > 120_000) throw new Error(`the purge of chat ${chatId} did not end within 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const purgedMs = performance.now() - sentAt;
    const reading = await loop.take();
    if (run === 0) continue; // warm-up
    responseMs.push(ms);
    purgeMs.push(purgedMs);
    loopBlockMs = worse(loopBlockMs, reading?.blockMs ?? null);
    if (reading && statementMs !== null && reading.statementMs > statementMs) statementSql = reading.statementSql;
    statementMs = worse(statementMs, reading?.statementMs ?? null);
    gcMs = worse(gcMs, reading?.gcMs ?? null);
  }
  return {
    response: { request: `DELETE /api/chats/:chatId (${2 * BIG_CHAT_PAIRS} messages): response`, runsMs: responseMs, loopBlockMs, statementMs, statementSql, gcMs },
    purge: { request: `… then until its ${2 * BIG_CHAT_PAIRS} messages are purged (from the DELETE sent)`, runsMs: purgeMs, loopBlockMs, statementMs, statementSql, gcMs },
  };
}
