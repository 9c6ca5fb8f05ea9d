import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../src/build-service';
import { ChatService, type TurnRequest } from '../src/chat/chat-service';
import type { ChatStore } from '../src/chat/ports';
import { createLogger } from '../src/logging/create-logger';
import { createTokenCounter } from '../src/llm/token-counter';
import { startFakeUpstream, type FakeUpstream } from './support/fake-upstream';
import { listeningPort, serviceEnvironment, startServer, stopServers, TSX_LOADER, withDeadline } from './support/server-process';
import { eventually } from './support/chat-client';
import { parseSse } from './support/sse';
import { startTestService } from './support/test-service';

/** One SSE event's data as the client got it, and when (Date.now() in this process). */
interface Arrival {
  at: number;
  data: string;
}

/** A POST /api/chat response whose body is read as it arrives, every event timestamped. */
interface LiveStream {
  status: number;
  /** Every frame received so far, exactly as sent. */
  raw(): string;
  arrivals: Arrival[];
  /** The text-delta parts received so far, with their arrival time. */
  deltas(): Array<{ at: number; delta: string }>;
  /** Resolves once `check()` holds; rejects if the body ends first or after `timeoutMs`. */
  waitFor(check: () => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the body ends: `error` is set when it broke off instead of ending cleanly. */
  ended: Promise<{ error?: unknown }>;
  isEnded(): boolean;
}

async function openChatStream(baseUrl: string, body: unknown): Promise<LiveStream> {
  const response = await fetch(`${baseUrl}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events = new EventEmitter();
  const arrivals: Arrival[] = [];
  let raw = '';
  let pending = '';
  let done = false;

  // Read eagerly: an errored web stream drops the chunks still queued, and the time of arrival
  // is what the checkpoint test measures.
  const ended = (async () => {
    try {
      for (;;) {
        const { value, done: finished } = await reader.read();
        if (finished) return {};
        const at = Date.now();
        const text = decoder.decode(value, { stream: true });
        raw += text;
        pending += text;
        const frames = pending.split('\n\n');
        pending = frames.pop()!;
        for (const event of parseSse(frames.join('\n\n'))) arrivals.push({ at, data: event.data });
        events.emit('data');
      }
    } catch (error) {
      return { error };
    } finally {
      done = true;
      events.emit('data');
    }
  })();

  return {
    status: response.status,
    raw: () => raw,
    arrivals,
    deltas: () =>
      arrivals.flatMap(({ at, data }) => {
        const part = data === '[DONE]' ? undefined : (JSON.parse(data) as { type: string; delta?: string });
        return part?.type === 'text-delta' ? [{ at, delta: part.delta! }] : [];
      }),
    waitFor(check, timeoutMs = 10_000) {
      const satisfied = new Promise<void>((resolve, reject) => {
        const onData = () => {
          if (check()) resolve();
          else if (done) reject(new Error(`the stream ended first: ${raw}`));
          else return;
          events.off('data', onData);
        };
        events.on('data', onData);
        onData();
      });
      return withDeadline(satisfied, timeoutMs, () => `the stream to get further; so far: ${raw}`);
    },
    ended,
    isEnded: () => done,
  };
}

/** The stream's frames, after checking that its text is exactly `id: N`, `data: ...` frames. */
function framesOf(raw: string): Array<{ id: number; part: unknown }> {
  const events = parseSse(raw);
  expect(events.map((event) => `id: ${event.id}\ndata: ${event.data}\n\n`).join('')).toBe(raw);
  return events.map((event) => ({ id: Number(event.id), part: event.data === '[DONE]' ? '[DONE]' : (JSON.parse(event.data) as unknown) }));
}

/** `parts` then `[DONE]`, as frames with ids counting from 1. */
function expectedFrames(parts: unknown[]): Array<{ id: number; part: unknown }> {
  return [...parts, '[DONE]'].map((part, index) => ({ id: index + 1, part }));
}

/**
 * POSTs a turn on a connection of its own (no pooled keep-alive socket), reporting either the
 * status or the connection error's code.
 */
function postOnNewConnection(port: number, body: unknown): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const outgoing = request(
      { host: '127.0.0.1', port, path: '/api/chat', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (response) => {
        resolve({ status: response.statusCode! });
        response.destroy();
      },
    );
    outgoing.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    outgoing.end(JSON.stringify(body));
  });
}

interface MessageRow {
  id: string;
  role: string;
  content: string;
  status: string;
  finishReason: string | null;
}

/** The chat's messages in insertion order, read from the file (the server must be gone). */
function readMessages(databasePath: string, chatId: string): MessageRow[] {
  const database = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    return database
      .prepare('SELECT id, role, content, status, finishReason FROM "Message" WHERE chatId = ? ORDER BY seq')
      .all(chatId) as MessageRow[];
  } finally {
    database.close();
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Runs the keys CLI from source, as `npm run keys` does. */
function runKeysCli(args: string[], environment: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['--import', TSX_LOADER, path.join(PROJECT_ROOT, 'src', 'cli', 'keys.ts'), ...args], {
    env: environment,
    encoding: 'utf8',
  });
}

function userTurn(chatId: string, content: string): TurnRequest {
  return { chatId, ownerId: 'local', messages: [{ role: 'user', content }] };
}

describe('the server process across stops', () => {
  let directory: string;
  let databasePath: string;
  let upstream: FakeUpstream;

  /** The environment of a server on this test's database, configured by `configToml`, backed by the fake. */
  function environmentWith(configToml: string): NodeJS.ProcessEnv {
    const configPath = path.join(directory, 'config.toml');
    // These tests are about stops, not keys.
    writeFileSync(configPath, `[auth]\nenabled = false\n${configToml}`);
    return serviceEnvironment({
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: `file:${databasePath}`,
      CONFIG_PATH: configPath,
      AZURE_OPENAI_API_KEY: upstream.apiKey,
      AZURE_OPENAI_ENDPOINT: upstream.url,
      AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
    });
  }

  beforeEach(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'lifecycle-process-test-'));
    databasePath = path.join(directory, 'data', 'chat.db');
    upstream = await startFakeUpstream();
  });

  afterEach(async () => {
    await stopServers();
    await upstream.close();
    rmSync(directory, { recursive: true, force: true });
  });

  test('SIGKILL mid-stream, then restart, leaves the partial reply as `interrupted`, losing no more than one checkpoint interval.', async () => {
    const checkpointIntervalMs = 300;
    const schedulingSlackMs = 150;
    const environment = environmentWith('[streaming]\ncheckpoint_interval_seconds = 0.3\n');
    const pieces = Array.from({ length: 200 }, (_, index) => `w${String(index).padStart(3, '0')} `);
    upstream.enqueue({ kind: 'stream', content: pieces, delayMs: 20 });
    const chatId = randomUUID();

    const server = startServer(directory, environment);
    const stream = await openChatStream(`http://127.0.0.1:${await listeningPort(server)}`, userTurn(chatId, 'Tell me a long story.'));
    expect(stream.status).toBe(200);
    // 50 pieces 20 ms apart: at least a second of streaming, several checkpoints.
    await stream.waitFor(() => stream.deltas().length >= 50);
    server.child.kill('SIGKILL');
    const killedAt = Date.now();
    expect(await server.waitForExit()).toEqual({ code: null, signal: 'SIGKILL' });
    expect((await withDeadline(stream.ended, 5_000, () => 'the stream to break off')).error).toBeDefined();

    const messageId = (JSON.parse(stream.arrivals[0]!.data) as { messageId: string }).messageId;
    const received = stream.deltas().map((delta) => delta.delta).join('');
    expect(pieces.join('').startsWith(received)).toBe(true);
    expect(stream.raw()).not.toContain('"type":"finish"');
    // Nothing has marked it yet: the restart is what finds it.
    expect(readMessages(databasePath, chatId)[1]).toMatchObject({ id: messageId, status: 'streaming' });

    const restarted = startServer(directory, environment);
    const port = await listeningPort(restarted);
    expect(restarted.logs.find((line) => line.abandonedReplies !== undefined)).toMatchObject({
      level: 40,
      abandonedReplies: 1,
      msg: 'replies cut off by the last stop marked interrupted',
    });
    const history = await fetch(`http://127.0.0.1:${port}/api/chats/${chatId}/messages`);
    expect(history.status).toBe(200);
    const { messages } = (await history.json()) as { messages: MessageRow[] };
    restarted.child.kill('SIGTERM');
    expect(await restarted.waitForExit()).toEqual({ code: 0, signal: null });

    const rows = readMessages(databasePath, chatId);
    expect(rows).toEqual([
      { id: expect.any(String), role: 'user', content: 'Tell me a long story.', status: 'completed', finishReason: null },
      { id: messageId, role: 'assistant', content: expect.any(String), status: 'interrupted', finishReason: null },
    ]);
    const saved = rows[1]!.content;
    // The checkpoint is a prefix of what the client saw...
    expect(received.slice(0, saved.length)).toBe(saved);
    // ...holding everything the client had one checkpoint interval (and some slack) before the kill.
    const surelySaved = stream
      .deltas()
      .filter((delta) => delta.at < killedAt - checkpointIntervalMs - schedulingSlackMs)
      .map((delta) => delta.delta)
      .join('');
    expect(surelySaved.length).toBeGreaterThan(0);
    expect(saved.slice(0, surelySaved.length)).toBe(surelySaved);
    expect(messages.map(({ id, role, content, status, finishReason }) => ({ id, role, content, status, finishReason }))).toEqual(rows);
  }, 30_000);

  test('a second server on the same database exits 1 naming the owner before touching any row; the keys CLI works beside the owner; after SIGKILL a restart is not refused', async () => {
    const environment = environmentWith('');
    upstream.enqueue({ kind: 'stream', content: ['Still ', 'going'], ending: 'stall', cutAfter: 1 });
    const chatId = randomUUID();
    const owner = startServer(directory, environment);
    const stream = await openChatStream(`http://127.0.0.1:${await listeningPort(owner)}`, userTurn(chatId, 'Hold on'));
    await stream.waitFor(() => stream.deltas().length === 1);
    // Once the checkpoint has landed, nothing changes the rows until the reply goes on.
    const during = await eventually(() => {
      const rows = readMessages(databasePath, chatId);
      return rows[1]?.content === 'Still ' ? rows : undefined;
    });
    expect(during.map((row) => row.status)).toEqual(['completed', 'streaming']);

    // On the simulator (no provider variables), whose warning must not come before the refusal either.
    const second = startServer(directory, { ...environment, AZURE_OPENAI_API_KEY: '', AZURE_OPENAI_ENDPOINT: '', AZURE_OPENAI_DEPLOYMENT_NAME: '' });
    expect(await second.waitForExit(15_000)).toEqual({ code: 1, signal: null });
    expect(second.stderr()).toMatch(
      new RegExp(
        `^Cannot start: the database ${escapeRegExp(databasePath)} is in use by server process ${owner.child.pid} on this machine, ` +
          'running since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\. One server owns a SQLite file at a time: stop that one first, ' +
          'or give this one its own DATABASE_URL\\.\\n$',
      ),
    );
    expect(second.logs).toEqual([]);
    // The live reply was not swept as interrupted, and it still streams.
    expect(readMessages(databasePath, chatId)).toEqual(during);
    expect(stream.isEnded()).toBe(false);

    const created = runKeysCli(['create', '--name', 'beside-the-server', '--json'], environment);
    expect({ status: created.status, stderr: created.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'beside-the-server', key: expect.stringMatching(/^lss_/) });

    owner.child.kill('SIGKILL');
    expect(await owner.waitForExit()).toEqual({ code: null, signal: 'SIGKILL' });
    const restarted = startServer(directory, environment);
    await listeningPort(restarted);
    expect(readMessages(databasePath, chatId).map((row) => row.status)).toEqual(['completed', 'interrupted']);
  }, 45_000);

  test('SIGTERM mid-stream lets the reply finish and the process exit 0.', async () => {
    const pieces = Array.from({ length: 40 }, (_, index) => `p${String(index).padStart(2, '0')} `);
    upstream.enqueue({ kind: 'stream', content: pieces, delayMs: 25 });
    const chatId = randomUUID();
    const server = startServer(directory, environmentWith('[streaming]\nshutdown_grace_seconds = 10\n'));
    const port = await listeningPort(server);
    const stream = await openChatStream(`http://127.0.0.1:${port}`, userTurn(chatId, 'Count.'));
    expect(stream.status).toBe(200);

    await stream.waitFor(() => stream.deltas().length >= 1);
    server.child.kill('SIGTERM');
    await server.waitForLog((line) => line.msg === 'shutting down');
    const lateTurn = await postOnNewConnection(port, userTurn(randomUUID(), 'Too late?'));
    // Refused while the first reply is still streaming, not after everything is over. A
    // connection the kernel accepted just before the listener closed is reset rather than refused.
    expect(stream.isEnded()).toBe(false);
    expect([{ error: 'ECONNREFUSED' }, { error: 'ECONNRESET' }, { status: 503 }]).toContainEqual(lateTurn);

    expect(await withDeadline(stream.ended, 15_000, () => 'the stream to end')).toEqual({});
    expect(await server.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    const messageId = (JSON.parse(stream.arrivals[0]!.data) as { messageId: string }).messageId;
    // The metadata of `start` and `finish` (context, timings) is not what this test is about.
    expect(framesOf(stream.raw())).toEqual(
      expectedFrames([
        expect.objectContaining({ type: 'start', messageId }),
        { type: 'text-start', id: 'text-0' },
        ...pieces.map((delta) => ({ type: 'text-delta', id: 'text-0', delta })),
        { type: 'text-end', id: 'text-0' },
        {
          type: 'finish',
          finishReason: 'stop',
          messageMetadata: expect.objectContaining({ usage: { promptTokens: 10, completionTokens: 40, totalTokens: 50 } }),
        },
      ]),
    );
    expect(readMessages(databasePath, chatId)).toEqual([
      { id: expect.any(String), role: 'user', content: 'Count.', status: 'completed', finishReason: null },
      { id: messageId, role: 'assistant', content: pieces.join(''), status: 'completed', finishReason: 'stop' },
    ]);
    expect(upstream.requests).toHaveLength(1);
  }, 30_000);

  test('SIGTERM with a stalled upstream aborts the reply after the grace period and exits 0', async () => {
    upstream.enqueue({ kind: 'stream', content: ['Hel', 'lo', ' never sent'], ending: 'stall', cutAfter: 2 });
    const chatId = randomUUID();
    const server = startServer(directory, environmentWith('[streaming]\nshutdown_grace_seconds = 0.5\n'));
    const stream = await openChatStream(`http://127.0.0.1:${await listeningPort(server)}`, userTurn(chatId, 'Hello?'));
    expect(stream.status).toBe(200);

    await stream.waitFor(() => stream.deltas().length >= 2);
    server.child.kill('SIGTERM');
    const signalledAt = Date.now();
    expect(await withDeadline(stream.ended, 5_000, () => 'the stream to end')).toEqual({});
    expect(await server.waitForExit(5_000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(3_000);

    const messageId = (JSON.parse(stream.arrivals[0]!.data) as { messageId: string }).messageId;
    expect(framesOf(stream.raw())).toEqual(
      expectedFrames([
        expect.objectContaining({ type: 'start', messageId }),
        { type: 'text-start', id: 'text-0' },
        { type: 'text-delta', id: 'text-0', delta: 'Hel' },
        { type: 'text-delta', id: 'text-0', delta: 'lo' },
        { type: 'text-end', id: 'text-0' },
        { type: 'abort', reason: 'shutdown' },
      ]),
    );
    expect(readMessages(databasePath, chatId)).toEqual([
      { id: expect.any(String), role: 'user', content: 'Hello?', status: 'completed', finishReason: null },
      { id: messageId, role: 'assistant', content: 'Hello', status: 'interrupted', finishReason: null },
    ]);
    await withDeadline(upstream.clientGone(0), 5_000, () => 'the upstream request to be dropped');
  }, 30_000);
});

// Not a process test: the window it needs (a turn still opening, reading its history, when SIGTERM comes)
// lasts a millisecond in a real process, so it is held open here with a gated store.
describe('ChatService.shutdown and a turn that is still being prepared', () => {
  // A turn accepted just before shutdown has no generation yet while it reads its history;
  // shutdown must wait for it all the same, or main.ts closes the database under it.
  test('waits for a turn accepted before it, even one still loading its history', async () => {
    const upstream = await startFakeUpstream();
    const service = await startTestService({ upstream });
    try {
      upstream.enqueue({ kind: 'stream', content: ['a', 'b', 'c'] });
      let loading!: () => void;
      let release!: () => void;
      const historyRequested = new Promise<void>((resolve) => (loading = resolve));
      const historyReleased = new Promise<void>((resolve) => (release = resolve));
      const store: ChatStore = Object.create(service.store) as ChatStore;
      store.openTurn = async (opening) => {
        loading();
        await historyReleased;
        return service.store.openTurn(opening);
      };
      const chat = new ChatService({
        store,
        instanceId: service.instanceId,
        provider: service.provider,
        counter: createTokenCounter('o200k_base'),
        maxConversationPairs: 50,
        maxTurnsPerOwner: undefined,
        maxPromptTokens: 100_000,
        maxReplyTokens: 1_000,
        defaultSystemPrompt: 'You are a helpful assistant.',
        generateTitles: false,
        logContent: false,
        idleTimeoutMs: 10_000,
        resumeGraceMs: 0,
        checkpointIntervalMs: 1_000,
        replySaveRetryMs: 1_000,
      });
      const chatId = randomUUID();
      const turn = chat.startTurn(userTurn(chatId, 'Hello?'), new AbortController().signal, createLogger('silent'));
      const turnOver = turn.then((generation) => generation.finished);

      await historyRequested;
      const stopped = chat.shutdown(10_000);
      release();
      try {
        await stopped;
        // "Resolves when every reply is stored": the accepted turn had the grace period to finish.
        expect(await service.query('SELECT role, content, status FROM "Message" WHERE chatId = ? ORDER BY seq', chatId)).toEqual([
          { role: 'user', content: 'Hello?', status: 'completed' },
          { role: 'assistant', content: 'abc', status: 'completed' },
        ]);
      } finally {
        await turnOver;
      }
    } finally {
      await service.close();
      await upstream.close();
    }
  }, 30_000);
});
