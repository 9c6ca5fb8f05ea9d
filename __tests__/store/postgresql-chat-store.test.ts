/**
 * What only the PostgreSQL store has to get right: a turn is one round trip, instances sharing
 * the database race safely (one turn per chat, one first key), leases decide whose replies are
 * swept, and the URL reaches `pg` as given while the logs never see its password. The behaviour
 * both engines share is the conformance suite's.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { Client } from 'pg';
import { PROJECT_ROOT } from '../../src/build-service';
import type { FinishedReply, NewTurn } from '../../src/chat/ports';
import { ConfigError } from '../../src/config/config-error';
import { AppError } from '../../src/errors/app-error';
import { DeletedChatPurge } from '../../src/store/deleted-chat-purge';
import { postgresqlPurgeSteps } from '../../src/store/postgresql-purge-steps';
import { openPostgresqlStore } from '../../src/store/open-postgresql-store';
import type { OpenedStore } from '../../src/store/open-store';
import { PostgresqlChatStore } from '../../src/store/postgresql-chat-store';
import { PostgresqlSql } from '../../src/store/postgresql-sql';
import { describePostgres } from '../support/postgres-database';

const MIGRATIONS = path.join(PROJECT_ROOT, 'prisma', 'postgresql', 'migrations');
const OWNER = 'owner-1';

function turn(chatId: string, instanceId: string, content = 'Hello'): NewTurn {
  return {
    chatId,
    ownerId: OWNER,
    systemPrompt: undefined,
    title: content,
    messages: [
      { role: 'user', content, tokenCount: 2 },
      { role: 'user', content: `${content}, again`, tokenCount: 3 },
    ],
    reply: { id: randomUUID(), model: 'gpt-4o', systemPromptHash: 'hash', instanceId },
  };
}

const FINISHED: FinishedReply = {
  content: 'Hi.',
  status: 'completed',
  finishReason: 'stop',
  usage: { promptTokens: 5, completionTokens: 2, totalTokens: 7 },
  usageEstimated: false,
  tokenCount: 2,
  timeToFirstTokenMs: 10,
  durationMs: 20,
};

describePostgres('the PostgreSQL store', (databases) => {
  const opened: OpenedStore[] = [];
  const open = async (settings: { url?: string; statementTimeoutMs?: number; migrate?: boolean } = {}) => {
    const store = await openPostgresqlStore({
      databaseUrl: settings.url ?? databases.url,
      migrationsDir: MIGRATIONS,
      owner: true,
      migrate: settings.migrate,
      poolSize: 4,
      statementTimeoutMs: settings.statementTimeoutMs ?? 0,
    });
    opened.push(store);
    return store;
  };

  async function query<Row>(sql: string, parameters: unknown[] = [], url = databases.url): Promise<Row[]> {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(sql, parameters)).rows as Row[];
    } finally {
      await client.end();
    }
  }

  /** A reply's status, wherever it is: a message id is unique across the test's databases. */
  const replyStatus = async (id: string, url = databases.url) =>
    (await query<{ status: string }>(`SELECT "status" FROM "Message" WHERE "id" = $1`, [id], url))[0]?.status;

  afterAll(async () => {
    await Promise.all(opened.map(({ store }) => store.close()));
  });

  test('a turn is one round trip, however the chat stands: new, idle, or left streaming by this instance', async () => {
    await open();
    const statements: string[] = [];
    // Every query of the pool, whatever Prisma sends, goes through its clients' `query`.
    class CountingClient extends Client {}
    const forward = Client.prototype.query as (...args: unknown[]) => unknown;
    CountingClient.prototype.query = function (this: Client, ...args: unknown[]) {
      const [first] = args;
      statements.push(typeof first === 'string' ? first : (first as { text: string }).text);
      return forward.apply(this, args);
    } as typeof Client.prototype.query;
    const sql = new PostgresqlSql(await new PrismaPg({ connectionString: databases.url, Client: CountingClient }).connect());
    const store = new PostgresqlChatStore({ sql, purge: new DeletedChatPurge(postgresqlPurgeSteps(sql)) });
    try {
      const chatId = randomUUID();
      const counted = async (work: () => Promise<unknown>) => {
        statements.length = 0;
        await work();
        return statements.length;
      };
      const first = turn(chatId, 'instance-a');
      expect(await counted(() => store.beginTurn(first))).toBe(1);
      expect(await counted(() => store.saveProgress(first.reply.id, 'H'))).toBe(1);
      expect(await counted(() => store.finishReply(first.reply.id, FINISHED))).toBe(1);
      const second = turn(chatId, 'instance-a', 'Next');
      expect(await counted(() => store.beginTurn(second))).toBe(1);
      // A restart of instance-a that never finished `second`: the next turn replaces it.
      const third = turn(chatId, 'instance-a', 'Third');
      expect(await counted(() => store.beginTurn(third))).toBe(1);
      expect(await counted(() => store.loadRecent(chatId, OWNER, 10))).toBe(1);

      expect(await replyStatus(second.reply.id)).toBe('interrupted');
      const recent = await store.loadRecent(chatId, OWNER, 100);
      expect(recent?.messageCount).toBe(9);
      expect(recent?.messages.map((message) => [message.content, message.status])).toEqual([
        ['Hello', 'completed'],
        ['Hello, again', 'completed'],
        ['Hi.', 'completed'],
        ['Next', 'completed'],
        ['Next, again', 'completed'],
        ['', 'interrupted'],
        ['Third', 'completed'],
        ['Third, again', 'completed'],
        ['', 'streaming'],
      ]);
      expect((await store.getChat(chatId, OWNER))?.lastReplyStatus).toBe('streaming');
    } finally {
      await store.close();
    }
  });

  test('two instances racing on one chat, new or idle: exactly one turn is stored, the other is told the chat is busy', async () => {
    const [a, b] = [await open(), await open()];
    for (let round = 0; round < 15; round++) {
      const chatId = randomUUID();
      if (round % 2 === 1) {
        const earlier = turn(chatId, 'instance-a', 'Earlier');
        await a.store.beginTurn(earlier);
        await a.store.finishReply(earlier.reply.id, FINISHED);
      }
      const turns = [turn(chatId, 'instance-a', 'From A'), turn(chatId, 'instance-b', 'From B')];
      const results = await Promise.allSettled([a.store.beginTurn(turns[0]!), b.store.beginTurn(turns[1]!)]);
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
      const [lost] = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
      expect(lost!.reason).toEqual(new AppError('generation_in_progress', 'This chat is already generating a reply.'));
      const [counts] = await query<{ rows: number; streaming: number; messageCount: number }>(
        `SELECT (SELECT count(*)::int FROM "Message" WHERE "chatId" = $1) AS "rows",
           (SELECT count(*)::int FROM "Message" WHERE "chatId" = $1 AND "status" = 'streaming') AS "streaming",
           (SELECT "messageCount" FROM "Chat" WHERE "id" = $1) AS "messageCount"`,
        [chatId],
      );
      expect(counts).toEqual({ rows: round % 2 === 1 ? 6 : 3, streaming: 1, messageCount: round % 2 === 1 ? 6 : 3 });
    }
  });

  test.each([
    ['a new chat', `INSERT INTO "Chat" ("id", "ownerId", "updatedAt") VALUES ($1, '${OWNER}', now())`, 'ROLLBACK'],
    ['an idle chat', `SELECT 1 FROM "Chat" WHERE "id" = $1 FOR UPDATE`, 'COMMIT'],
  ])('two turns on %s, both made to wait for the same row and then let go together: one is stored', async (_kind, hold, release) => {
    const [a, b] = [await open(), await open()];
    const chatId = randomUUID();
    if (release === 'COMMIT') {
      const earlier = turn(chatId, 'instance-b', 'Earlier');
      await b.store.beginTurn(earlier);
      await b.store.finishReply(earlier.reply.id, FINISHED);
    }
    const holder = new Client({ connectionString: databases.url });
    await holder.connect();
    try {
      // Each turn then decides on a row version committed after its statement began: the case
      // where a decision read from the statement's snapshot would let both through.
      await holder.query('BEGIN');
      await holder.query(hold, [chatId]);
      const racing = Promise.allSettled([a.store.beginTurn(turn(chatId, 'instance-a', 'From A')), b.store.beginTurn(turn(chatId, 'instance-b', 'From B'))]);
      await waitUntil(async () => {
        const [row] = await query<{ waiting: number }>(
          `SELECT count(*)::int AS "waiting" FROM pg_stat_activity WHERE "datname" = current_database() AND "wait_event_type" = 'Lock'`,
        );
        return row!.waiting === 2;
      });
      await holder.query(release);
      const results = await racing;
      expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    } finally {
      await holder.end();
    }
    const [counts] = await query<{ streaming: number; messageCount: number; rows: number }>(
      `SELECT (SELECT count(*)::int FROM "Message" WHERE "chatId" = $1 AND "status" = 'streaming') AS "streaming",
         (SELECT "messageCount" FROM "Chat" WHERE "id" = $1) AS "messageCount",
         (SELECT count(*)::int FROM "Message" WHERE "chatId" = $1) AS "rows"`,
      [chatId],
    );
    expect(counts).toEqual({ streaming: 1, messageCount: counts!.rows, rows: release === 'COMMIT' ? 6 : 3 });
  });

  test('a chat deleted while a turn holds it: the purge covers that turn\'s messages, which the snapshot did not see', async () => {
    const { store } = await open();
    const chatId = randomUUID();
    await store.beginTurn(turn(chatId, 'instance-a'));
    const holder = new Client({ connectionString: databases.url });
    await holder.connect();
    try {
      // A turn in flight: it holds the chat's row and has drawn seqs, not yet committed.
      await holder.query('BEGIN');
      await holder.query(`UPDATE "Chat" SET "messageCount" = "messageCount" + 1 WHERE "id" = $1`, [chatId]);
      await holder.query(
        `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "createdAt", "updatedAt")
         VALUES (gen_random_uuid()::text, $1, $2, 'user', 'late', 'completed', now(), now())`,
        [OWNER, chatId],
      );
      const deleting = store.deleteChat(chatId, OWNER);
      await waitUntil(async () => {
        const [row] = await query<{ waiting: number }>(
          `SELECT count(*)::int AS "waiting" FROM pg_stat_activity WHERE "datname" = current_database() AND "wait_event_type" = 'Lock'`,
        );
        return row!.waiting === 1;
      });
      await holder.query('COMMIT');
      expect(await deleting).toBe(true);
    } finally {
      await holder.end();
    }
    await store.purgeDeletedChats();
    expect(await query(`SELECT "content" FROM "Message" WHERE "chatId" = $1`, [chatId])).toEqual([]);
  });

  test('five instances creating the first key at the same instant: exactly one key exists', async () => {
    const url = await databases.create();
    const instances = await Promise.all([1, 2, 3, 4, 5].map(() => open({ url })));
    const created = await Promise.all(
      instances.map(({ keys }, index) => keys.insertFirstKey({ id: `key-${index}`, name: 'default', prefix: `lss_${index}`, hash: 'ab' })),
    );
    expect(created.filter(Boolean)).toHaveLength(1);
    expect(await instances[0]!.keys.listKeys()).toEqual([created.find(Boolean)]);
  });

  test('the sweep leaves replies of instances whose lease is current, and takes them once it lapses', async () => {
    const url = await databases.create();
    const [a, b] = [await open({ url }), await open({ url })];
    const [ownId, otherId, legacyId] = [randomUUID(), randomUUID(), randomUUID()];
    const own = turn(ownId, 'sweep-a');
    const other = turn(otherId, 'sweep-b');
    await a.store.renewLease('sweep-a', 60_000);
    await b.store.renewLease('sweep-b', 300);
    await a.store.beginTurn(own);
    await b.store.beginTurn(other);
    const legacy = turn(legacyId, 'sweep-legacy');
    await a.store.beginTurn(legacy);
    // A row from before replies named their instance.
    await query(`UPDATE "Message" SET "instanceId" = NULL WHERE "id" = $1`, [legacy.reply.id], url);

    expect(await a.store.interruptAbandonedReplies({ instanceId: 'sweep-a', includeOwn: false })).toBe(1);
    expect([await replyStatus(own.reply.id, url), await replyStatus(other.reply.id, url), await replyStatus(legacy.reply.id, url)]).toEqual([
      'streaming',
      'streaming',
      'interrupted',
    ]);

    await waitUntil(async () => (await query<{ lapsed: boolean }>(`SELECT "expiresAt" <= now() AS "lapsed" FROM "InstanceLease" WHERE "instanceId" = 'sweep-b'`, [], url))[0]!.lapsed);
    expect(await a.store.interruptAbandonedReplies({ instanceId: 'sweep-a', includeOwn: false })).toBe(1);
    expect(await replyStatus(other.reply.id, url)).toBe('interrupted');
    expect((await a.store.getChat(otherId, OWNER))?.lastReplyStatus).toBe('interrupted');
    expect(await replyStatus(own.reply.id, url)).toBe('streaming');

    // At a restart, its own replies of the earlier run go too.
    expect(await a.store.interruptAbandonedReplies({ instanceId: 'sweep-a', includeOwn: true })).toBe(1);
    expect(await replyStatus(own.reply.id, url)).toBe('interrupted');

    // A released lease is swept at once.
    const next = turn(randomUUID(), 'sweep-b');
    await b.store.renewLease('sweep-b', 60_000);
    await b.store.beginTurn(next);
    expect(await a.store.interruptAbandonedReplies({ instanceId: 'sweep-a', includeOwn: false })).toBe(0);
    await b.store.releaseLease('sweep-b');
    expect(await a.store.interruptAbandonedReplies({ instanceId: 'sweep-a', includeOwn: false })).toBe(1);
  });

  test('URL parameters reach pg (sslmode, application_name), and what the logs see has no password', async () => {
    const url = new URL(databases.url);
    url.username = 'postgres';
    url.password = 'not-to-be-logged';
    url.search = '?sslmode=disable&application_name=lss-store-test';
    const { store, describe: described } = await open({ url: url.href });
    expect(described).toEqual({ engine: 'postgresql', database: `${url.hostname}:${url.port || 5432}${url.pathname}` });
    expect(JSON.stringify(described)).not.toContain('not-to-be-logged');
    await store.ping();
    const [row] = await query<{ sessions: number }>(
      `SELECT count(*)::int AS "sessions" FROM pg_stat_activity WHERE "application_name" = 'lss-store-test' AND "datname" = current_database()`,
    );
    expect(row!.sessions).toBeGreaterThan(0);
  });

  test('times are stored as the instants they are, whatever the session time zone the URL or the role sets', async () => {
    const url = new URL(databases.url);
    url.searchParams.set('options', '-c TimeZone=Pacific/Auckland');
    const { store } = await open({ url: url.href });
    const chatId = randomUUID();
    const before = Date.now();
    await store.beginTurn(turn(chatId, 'instance-tz'));
    const after = Date.now();
    // Read back by a UTC session that did not write them.
    const [row] = await query<{ createdAt: Date; updatedAt: Date }>(
      `SELECT "createdAt", "updatedAt" FROM "Chat" WHERE "ownerId" = $1 AND "id" = $2`,
      [OWNER, chatId],
    );
    for (const time of [row!.createdAt, row!.updatedAt]) {
      expect(time.getTime()).toBeGreaterThanOrEqual(before - 1);
      expect(time.getTime()).toBeLessThanOrEqual(after + 1);
    }
    const chat = await store.getChat(chatId, OWNER);
    expect(chat!.createdAt).toEqual(row!.createdAt);
  });

  test('an unreachable server fails the start with where and why, and no password', async () => {
    const error = await openPostgresqlStore({
      databaseUrl: 'postgres://chat:secret@127.0.0.1:1/chat?sslmode=disable',
      migrationsDir: MIGRATIONS,
      owner: true,
      poolSize: 1,
      statementTimeoutMs: 0,
    }).catch((caught: unknown) => caught);
    expect(error).toEqual(new ConfigError('Cannot connect to PostgreSQL at 127.0.0.1:1/chat: connect ECONNREFUSED 127.0.0.1:1'));
  });

  test('with migrate = false, a database behind its migrations is refused, naming them', async () => {
    const url = await databases.create();
    await expect(open({ url, migrate: false })).rejects.toThrow(
      new ConfigError(
        'The database has migrations not applied (20261130120000_init, 20261201000000_counters_purges_and_leases, 20261202000000_api_key_change_notices, 20261203000000_client_message_ids) and ' +
          '[database] migrate_on_start is false: run `npm run migrate` first, or set migrate_on_start = true.',
      ),
    );
  });

  test('a statement past statement_timeout_ms, or a server that does not answer, is service_unavailable (503), not a 500', async () => {
    const { store } = await open({ statementTimeoutMs: 200 });
    const chatId = randomUUID();
    await store.beginTurn(turn(chatId, 'instance-a'));
    const holder = new Client({ connectionString: databases.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "Chat" WHERE "id" = $1 FOR UPDATE`, [chatId]);
      const error = await store.beginTurn(turn(chatId, 'instance-a', 'Blocked')).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'service_unavailable', status: 503, retryAfterSeconds: 2 });
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }

    const sql = new PostgresqlSql(await new PrismaPg({ connectionString: 'postgres://postgres@127.0.0.1:1/nothing' }).connect());
    const unreachable = new PostgresqlChatStore({ sql, purge: new DeletedChatPurge(postgresqlPurgeSteps(sql)) });
    await expect(unreachable.getChat(chatId, OWNER)).rejects.toMatchObject({ code: 'service_unavailable' });
    await unreachable.close();
  });

  test('a deleted chat is gone at once; its messages go in batches, and a new chat of the same id starts empty', async () => {
    const { store } = await open();
    const chatId = randomUUID();
    const first = turn(chatId, 'instance-a');
    await store.beginTurn(first);
    await store.finishReply(first.reply.id, FINISHED);
    // A big chat: more messages than one batch removes.
    await query(
      `INSERT INTO "Message" ("id", "ownerId", "chatId", "role", "content", "status", "createdAt", "updatedAt")
       SELECT gen_random_uuid()::text, $1, $2, 'user', 'filler', 'completed', now(), now() FROM generate_series(1, 2500)`,
      [OWNER, chatId],
    );
    await store.close();
    const { store: reopened } = await open();
    expect(await reopened.deleteChat(chatId, OWNER)).toBe(true);
    expect(await reopened.getChat(chatId, OWNER)).toBeNull();

    await reopened.beginTurn(turn(chatId, 'instance-a', 'Fresh start'));
    expect((await reopened.loadRecent(chatId, OWNER, 10))?.messages.map((message) => message.content)).toEqual(['Fresh start', 'Fresh start, again', '']);
    expect((await reopened.listMessages(chatId, OWNER, { limit: 10 }))?.messages).toHaveLength(3);

    await waitUntil(async () => (await query(`SELECT 1 FROM "ChatPurge"`)).length === 0);
    expect(await query(`SELECT count(*)::int AS "left" FROM "Message" WHERE "chatId" = $1`, [chatId])).toEqual([{ left: 3 }]);
  });
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
