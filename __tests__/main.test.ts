import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PROJECT_ROOT } from '../src/build-service';
import { startFakeUpstream } from './support/fake-upstream';
import { FIRST_KEY_LINE, listeningPort, serviceEnvironment, startServer, stopServers } from './support/server-process';

const SIMULATOR_WARNING =
  'No model provider is configured: replies come from the built-in SIMULATOR. ' +
  'Set AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT_NAME (or OPENAI_API_KEY) to use a real model.';

const FIRST_KEY_LOGGED = 'created the first API key "default"; it is shown once, on stderr';

/** What the first start prints on stderr. */
function firstKeyText(key: string): string {
  return (
    `First start: created the API key "default": ${key} . Send it as "Authorization: Bearer <key>". ` +
    'It is not shown again. Create more with: npm run keys -- create --name NAME\n'
  );
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

/** Starts a turn in a new chat of the service on `port`. */
function postHello(port: number, headers: Record<string, string>): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ chatId: randomUUID(), messages: [{ role: 'user', content: 'Hi' }] }),
  });
}

/** The ids of the API keys stored in the SQLite file at `databasePath`. */
function keyIdsOf(databasePath: string): string[] {
  const database = new Database(databasePath, { readonly: true });
  try {
    return database.prepare('SELECT id FROM ApiKey ORDER BY createdAt').all().map((row) => (row as { id: string }).id);
  } finally {
    database.close();
  }
}

/** A port nothing listens on now, for a server that does not log its port (PORT=0 would hide it). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves once `url` answers 200; rejects after `timeoutMs`. */
async function untilAnswering(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await fetch(url).then((response) => response.status, () => undefined);
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms (last: ${status ?? 'no connection'})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('main (the server process)', () => {
  let directory: string;

  beforeEach(() => {
    directory = mkdtempSync(path.join(tmpdir(), 'main-test-'));
  });

  afterEach(async () => {
    await stopServers();
    rmSync(directory, { recursive: true, force: true });
  });

  test('refuses to start in production without credentials, naming the variables to set', async () => {
    const databasePath = path.join(directory, 'data', 'chat.db');
    const server = startServer(
      directory,
      serviceEnvironment({ NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `file:${databasePath}` }),
    );

    expect(await server.waitForExit(10_000)).toEqual({ code: 1, signal: null });
    expect(server.stderr()).toContain(
      'Cannot start: No model provider is configured. Set AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and ' +
        'AZURE_OPENAI_DEPLOYMENT_NAME (Azure OpenAI), or OPENAI_API_KEY and optionally ' +
        'OPENAI_BASE_URL (OpenAI or a compatible server).\n',
    );
    expect(server.logs).toEqual([]);
    expect(existsSync(databasePath)).toBe(false);
  }, 30_000);

  test('refuses to start with an invalid CONFIG_PATH file, naming the key', async () => {
    const configPath = path.join(directory, 'local.toml');
    writeFileSync(configPath, '[openai]\ntemperature = 9\n');
    const server = startServer(
      directory,
      serviceEnvironment({
        CONFIG_PATH: configPath,
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: `file:${path.join(directory, 'data', 'chat.db')}`,
      }),
    );

    expect(await server.waitForExit(10_000)).toEqual({ code: 1, signal: null });
    expect(server.stderr()).toContain(
      'Cannot start: Invalid configuration:\n  - openai.temperature: Too big: expected number to be <=2\n',
    );
    expect(server.logs).toEqual([]);
  }, 30_000);

  test('without credentials, serves the simulator, creates the database and stops cleanly on SIGTERM', async () => {
    const databasePath = path.join(directory, 'nested', 'data', 'chat.db');
    const server = startServer(
      directory,
      serviceEnvironment({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `file:${databasePath}` }),
    );

    const listening = await server.waitForLog((line) => line.msg === 'listening');
    expect(listening).toMatchObject({ level: 30, host: '127.0.0.1', provider: 'simulator', model: 'simulator' });
    const port = listening.port as number;
    expect(Number.isInteger(port) && port > 0).toBe(true);
    expect(server.logs[0]).toMatchObject({
      level: 30,
      msg: 'database ready',
      engine: 'sqlite',
      database: databasePath,
      instanceId: `${hostname()}:pid-${server.child.pid}`,
      appliedMigrations: expect.arrayContaining(['20261123000000_init']),
    });
    expect(server.logs[1]).toMatchObject({ level: 40, msg: SIMULATOR_WARNING });

    expect(await getJson(`http://127.0.0.1:${port}/healthz`)).toEqual({
      status: 200,
      body: { status: 'ok', provider: 'simulator', model: 'simulator', simulated: true, uptimeSeconds: expect.any(Number) },
    });
    expect(await getJson(`http://127.0.0.1:${port}/readyz`)).toEqual({ status: 200, body: { status: 'ready' } });
    expect(existsSync(databasePath)).toBe(true);

    // The first start creates a key and prints it once, on stderr only: a secret does not belong
    // in log files. The log says that it was created, with its id.
    const key = (await server.waitForStderr(FIRST_KEY_LINE))[1]!;
    expect(server.stderr()).toBe(firstKeyText(key));
    expect(JSON.stringify(server.logs)).not.toContain(key);
    expect(server.logs.find((line) => line.msg === FIRST_KEY_LOGGED)).toEqual({
      level: 30,
      time: expect.any(String),
      service: 'llm-streaming-service',
      keyId: keyIdsOf(databasePath)[0],
      msg: FIRST_KEY_LOGGED,
    });
    const refused = await postHello(port, {});
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer');
    const accepted = await postHello(port, { authorization: `Bearer ${key}` });
    expect(accepted.status).toBe(200);
    expect(await accepted.text()).toContain('data: [DONE]');

    server.child.kill('SIGTERM');
    expect(await server.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    const messages = server.logs.map((line) => line.msg);
    expect(messages.slice(0, 4)).toEqual(['database ready', SIMULATOR_WARNING, FIRST_KEY_LOGGED, 'listening']);
    expect(messages.slice(-2)).toEqual(['shutting down', 'stopped']);
    expect(server.logs.find((line) => line.msg === 'shutting down')).toMatchObject({ level: 30, signal: 'SIGTERM' });
  }, 30_000);

  test('with LOG_LEVEL=error, the first start still prints the key on stderr, once, and the key works', async () => {
    const databasePath = path.join(directory, 'chat.db');
    const port = await freePort();
    const environment = serviceEnvironment({ LOG_LEVEL: 'error', PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: `file:${databasePath}` });
    const server = startServer(directory, environment);

    const key = (await server.waitForStderr(FIRST_KEY_LINE))[1]!;
    expect(server.stderr()).toBe(firstKeyText(key));
    await untilAnswering(`http://127.0.0.1:${port}/healthz`);
    const accepted = await postHello(port, { authorization: `Bearer ${key}` });
    expect(accepted.status).toBe(200);
    expect(await accepted.text()).toContain('data: [DONE]');
    server.child.kill('SIGTERM');
    expect(await server.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(server.logs).toEqual([]);

    // The next start finds a key: nothing is printed.
    const again = startServer(directory, environment);
    await untilAnswering(`http://127.0.0.1:${port}/healthz`);
    again.child.kill('SIGTERM');
    expect(await again.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(again.stderr()).toBe('');
    expect(keyIdsOf(databasePath)).toHaveLength(1);
  }, 30_000);

  test.each<[string, string, string | undefined, string]>([
    ['with auth off, listens on loopback only when HOST is not set', '[auth]\nenabled = false\n', undefined, '127.0.0.1'],
    ['with auth on, listens on every interface when HOST is not set', '', undefined, '0.0.0.0'],
    ['with auth off and HOST=127.0.0.2, a loopback address, does not warn', '[auth]\nenabled = false\n', '127.0.0.2', '127.0.0.2'],
    ['with auth off and HOST=::ffff:127.0.0.1, a loopback address, does not warn', '[auth]\nenabled = false\n', '::ffff:127.0.0.1', '::ffff:127.0.0.1'],
  ])('%s', async (_name, toml, hostSetting, host) => {
    const configPath = path.join(directory, 'config.toml');
    writeFileSync(configPath, toml);
    const server = startServer(
      directory,
      serviceEnvironment({
        PORT: '0',
        ...(hostSetting === undefined ? {} : { HOST: hostSetting }),
        CONFIG_PATH: configPath,
        DATABASE_URL: `file:${path.join(directory, 'chat.db')}`,
      }),
    );
    const listening = await server.waitForLog((line) => line.msg === 'listening');
    expect(listening).toMatchObject({ host, auth: toml === '' });
    // The warning about an open service is for auth off beyond loopback only (next test).
    expect(server.logs.filter((line) => String(line.msg).startsWith('Auth is off'))).toEqual([]);
    server.child.kill('SIGTERM');
    expect(await server.waitForExit(10_000)).toEqual({ code: 0, signal: null });
  }, 30_000);

  test('with auth off and HOST set to every interface, listens there and warns', async () => {
    const configPath = path.join(directory, 'config.toml');
    writeFileSync(configPath, '[auth]\nenabled = false\n');
    const server = startServer(
      directory,
      serviceEnvironment({ PORT: '0', HOST: '0.0.0.0', CONFIG_PATH: configPath, DATABASE_URL: `file:${path.join(directory, 'chat.db')}` }),
    );
    const listening = await server.waitForLog((line) => line.msg === 'listening');
    expect(listening).toMatchObject({ host: '0.0.0.0', auth: false });
    expect(server.logs.filter((line) => line.level === 40 && line.msg !== SIMULATOR_WARNING)).toEqual([
      expect.objectContaining({
        host: '0.0.0.0',
        msg: 'Auth is off and the service listens beyond this machine: anyone who can reach it can use it and read every chat',
      }),
    ]);
    server.child.kill('SIGTERM');
    expect(await server.waitForExit(10_000)).toEqual({ code: 0, signal: null });
  }, 30_000);

  test('reads .env from its working directory, and the environment wins over it', async () => {
    writeFileSync(
      path.join(directory, '.env'),
      [
        'PORT=0',
        'HOST=127.0.0.1',
        'DATABASE_URL=file:./from-dotenv/chat.db',
        'OPENAI_BASE_URL=http://127.0.0.1:9/v1',
        'OPENAI_MODEL=model-from-dotenv',
        '',
      ].join('\n'),
    );
    const server = startServer(directory, serviceEnvironment({ OPENAI_MODEL: 'model-from-environment' }));

    const listening = await server.waitForLog((line) => line.msg === 'listening');
    expect(listening).toMatchObject({ level: 30, host: '127.0.0.1', provider: 'openai', model: 'model-from-environment' });
    expect(server.logs.filter((line) => line.level >= 40)).toEqual([]);

    expect(await getJson(`http://127.0.0.1:${listening.port as number}/healthz`)).toEqual({
      status: 200,
      body: { status: 'ok', provider: 'openai', model: 'model-from-environment', simulated: false, uptimeSeconds: expect.any(Number) },
    });
    // A relative DATABASE_URL starts at the working directory.
    expect(existsSync(path.join(directory, 'from-dotenv', 'chat.db'))).toBe(true);

    server.child.kill('SIGTERM');
    expect(await server.waitForExit(10_000)).toEqual({ code: 0, signal: null });
  }, 30_000);

  test('a .env copied from .env.example overrides none of the CONFIG_PATH settings', async () => {
    copyFileSync(path.join(PROJECT_ROOT, '.env.example'), path.join(directory, '.env'));
    const databasePath = path.join(directory, 'from-toml', 'chat.db');
    const configPath = path.join(directory, 'local.toml');
    writeFileSync(
      configPath,
      [
        '[server]',
        'port = 0',
        'host = "127.0.0.1"',
        '[auth]',
        'enabled = false',
        '[database]',
        `url = ${JSON.stringify(`file:${databasePath}`)}`,
        '[logging]',
        'level = "debug"',
        '[openai]',
        'api_version = "2025-01-01-preview"',
        '',
      ].join('\n'),
    );
    // The provider comes from the real environment, as an operator would fill it in.
    const upstream = await startFakeUpstream();
    try {
      const server = startServer(
        directory,
        serviceEnvironment({
          CONFIG_PATH: configPath,
          AZURE_OPENAI_API_KEY: upstream.apiKey,
          AZURE_OPENAI_ENDPOINT: upstream.url,
          AZURE_OPENAI_DEPLOYMENT_NAME: upstream.deployment,
        }),
      );
      const port = await listeningPort(server);
      const response = await fetch(`http://127.0.0.1:${port}/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ chatId: '123e4567-e89b-42d3-a456-426614174000', messages: [{ role: 'user', content: 'Hi' }] }),
      });
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('data: [DONE]');

      expect(upstream.requests.map((request) => request.path)).toEqual([
        `/openai/deployments/${upstream.deployment}/chat/completions?api-version=2025-01-01-preview`,
      ]);
      expect(server.logs.find((line) => line.msg === 'upstream context')).toMatchObject({ level: 20 });
      expect(existsSync(databasePath)).toBe(true);
      expect(existsSync(path.join(directory, 'data'))).toBe(false);
      server.child.kill('SIGTERM');
      expect(await server.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    } finally {
      await upstream.close();
    }
  }, 30_000);
});

describe('main, when it cannot listen', () => {
  let directory: string;
  let occupier: Server | undefined;

  beforeEach(() => {
    directory = mkdtempSync(path.join(tmpdir(), 'main-listen-test-'));
  });

  afterEach(async () => {
    await stopServers();
    if (occupier) await new Promise((resolve) => occupier!.close(resolve));
    occupier = undefined;
    rmSync(directory, { recursive: true, force: true });
  });

  /** The rows a later start must leave as they are. */
  function rowsOf(databasePath: string) {
    const database = new Database(databasePath, { readonly: true });
    try {
      return {
        keys: database.prepare('SELECT id, name, revokedAt FROM ApiKey ORDER BY createdAt').all(),
        chats: database.prepare('SELECT id, title FROM Chat ORDER BY id').all(),
        messages: database.prepare('SELECT id, role, status, content FROM Message ORDER BY chatId, seq').all(),
      };
    } finally {
      database.close();
    }
  }

  test('a port already in use: one line on stderr, exit code 1, and the database keeps its rows', async () => {
    // Its own database (no other process uses it), filled by an earlier run: a key and a chat.
    const databasePath = path.join(directory, 'chat.db');
    const earlier = startServer(directory, serviceEnvironment({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `file:${databasePath}` }));
    const key = (await earlier.waitForStderr(FIRST_KEY_LINE))[1]!;
    const turn = await postHello(await listeningPort(earlier), { authorization: `Bearer ${key}` });
    expect(await turn.text()).toContain('data: [DONE]');
    earlier.child.kill('SIGTERM');
    expect(await earlier.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    const rows = rowsOf(databasePath);
    expect(rows.messages).toHaveLength(2);

    occupier = createServer();
    await new Promise<void>((resolve) => occupier!.listen(0, '127.0.0.1', resolve));
    const port = (occupier.address() as AddressInfo).port;
    const server = startServer(directory, serviceEnvironment({ PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: `file:${databasePath}` }));

    expect(await server.waitForExit(15_000)).toEqual({ code: 1, signal: null });
    expect(server.stderr()).toBe(`port ${port} is already in use on 127.0.0.1; set PORT\n`);
    expect(server.logs.filter((line) => line.msg === 'listening')).toEqual([]);
    expect(rowsOf(databasePath)).toEqual(rows);
  }, 45_000);

  test('a HOST that is not an address of this machine: one line on stderr, exit code 1, and no key made', async () => {
    const databasePath = path.join(directory, 'chat.db');
    // 192.0.2.0/24 is reserved for documentation (RFC 5737): no machine has it.
    const server = startServer(directory, serviceEnvironment({ PORT: '0', HOST: '192.0.2.1', DATABASE_URL: `file:${databasePath}` }));

    expect(await server.waitForExit(15_000)).toEqual({ code: 1, signal: null });
    expect(server.stderr()).toBe('cannot listen on 192.0.2.1: it is not an address of this machine; set HOST\n');
    // The first key is made once the port is open, so that it is not shown by a start that fails.
    expect(rowsOf(databasePath).keys).toEqual([]);
  }, 30_000);
});

