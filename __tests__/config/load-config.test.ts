import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/build-service';
import { ConfigError } from '../../src/config/config-error';
import type { Config } from '../../src/config/config-schema';
import { loadConfig, workerCount, type Environment } from '../../src/config/load-config';

const DEFAULTS_PATH = path.join(PROJECT_ROOT, 'config', 'default.toml');

/** config/default.toml, every setting in it. */
const DEFAULT_CONFIG: Config = {
  server: { port: 3000, body_limit: '1mb', workers: 1, cors_origins: [] },
  auth: { enabled: true, stream_token_ttl_seconds: 300, jwt_jwks_url: '', jwt_issuer: '', jwt_audience: '' },
  limits: { requests_per_minute: 60, concurrent_streams: 4, max_messages_per_request: 50, max_message_characters: 100_000, max_open_streams: 0 },
  database: {
    url: 'file:./data/chat.db',
    migrate_on_start: true,
    pool_size: 10,
    statement_timeout_ms: 10_000,
    lock_wait_seconds: 5,
    reply_save_retry_seconds: 30,
  },
  cluster: { instance_id: '', lease_seconds: 10, redis_url: '', redis_prefix: 'lss:' },
  chat: {
    max_conversation_pairs: 50,
    max_context_tokens: 0,
    reserve_output_tokens: 4096,
    tokenizer: 'auto',
    default_system_prompt: 'You are a helpful assistant.',
    generate_titles: false,
  },
  openai: { model: 'gpt-4o', temperature: 0.7, max_tokens: 0, reasoning_model: 'auto', max_retries: 2, request_timeout_seconds: 60, api_version: '2024-10-21', max_event_bytes: 1_048_576 },
  streaming: {
    resume_grace_seconds: 15,
    shutdown_grace_seconds: 10,
    heartbeat_seconds: 15,
    upstream_idle_timeout_seconds: 60,
    checkpoint_interval_seconds: 1,
    slow_reader_timeout_seconds: 30,
  },
  simulator: { delay_ms: 25 },
  metrics: { enabled: true, token: '' },
  logging: { level: 'info', log_content: false },
};

let directory: string;
let fileCount = 0;

beforeAll(() => {
  directory = mkdtempSync(path.join(tmpdir(), 'load-config-test-'));
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

/** Writes `toml` to a fresh file in the temp folder and returns its path. */
function writeOverlay(toml: string): string {
  fileCount += 1;
  const file = path.join(directory, `overlay-${fileCount}.toml`);
  writeFileSync(file, toml);
  return file;
}

/** The ConfigError `run` throws; fails the test if it throws anything else or nothing. */
function configErrorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

describe('loadConfig', () => {
  test('with no overlay and no environment, returns every default', () => {
    expect(loadConfig(DEFAULTS_PATH, {})).toEqual(DEFAULT_CONFIG);
  });

  test('ignores variables that are empty or only whitespace', () => {
    const environment: Environment = { PORT: '', HOST: '  ', DATABASE_URL: '', LOG_LEVEL: ' ', OPENAI_MODEL: '', CONFIG_PATH: ' ' };
    expect(loadConfig(DEFAULTS_PATH, environment)).toEqual(DEFAULT_CONFIG);
  });

  test('a CONFIG_PATH file overlays only the keys it sets', () => {
    const overlay = writeOverlay('[chat]\nmax_conversation_pairs = 2\n\n[openai]\ntemperature = 0\n');
    expect(loadConfig(DEFAULTS_PATH, { CONFIG_PATH: overlay })).toEqual({
      ...DEFAULT_CONFIG,
      chat: { ...DEFAULT_CONFIG.chat, max_conversation_pairs: 2 },
      openai: { ...DEFAULT_CONFIG.openai, temperature: 0 },
    });
  });

  test('a CONFIG_PATH file may set the server and database settings', () => {
    const overlay = writeOverlay('[server]\nport = 8080\n\n[database]\nurl = "file:/var/lib/chat.db"\n');
    expect(loadConfig(DEFAULTS_PATH, { CONFIG_PATH: overlay })).toEqual({
      ...DEFAULT_CONFIG,
      server: { ...DEFAULT_CONFIG.server, port: 8080 },
      database: { ...DEFAULT_CONFIG.database, url: 'file:/var/lib/chat.db' },
    });
  });

  test.each(['postgres://chat@db.internal:5432/chat', 'postgresql://chat:secret@127.0.0.1/chat?sslmode=require', 'file:/var/lib/chat.db'])(
    'accepts the database URL %s',
    (url) => {
      expect(loadConfig(DEFAULTS_PATH, { DATABASE_URL: url }).database.url).toBe(url);
    },
  );

  test('environment overrides win over the CONFIG_PATH file', () => {
    const overlay = writeOverlay(
      [
        '[server]',
        'port = 8080',
        'host = "10.0.0.1"',
        '[database]',
        'url = "file:./from-file.db"',
        '[logging]',
        'level = "warn"',
        '[openai]',
        'model = "model-from-file"',
        'api_version = "2024-06-01"',
      ].join('\n'),
    );
    const environment: Environment = {
      CONFIG_PATH: overlay,
      PORT: '4000',
      HOST: '127.0.0.1',
      DATABASE_URL: 'file:/tmp/from-environment.db',
      LOG_LEVEL: 'debug',
      OPENAI_MODEL: 'llama3.2',
      AZURE_OPENAI_API_VERSION: '2025-01-01-preview',
    };
    expect(loadConfig(DEFAULTS_PATH, environment)).toEqual({
      ...DEFAULT_CONFIG,
      server: { port: 4000, host: '127.0.0.1', body_limit: '1mb', workers: 1, cors_origins: [] },
      database: { ...DEFAULT_CONFIG.database, url: 'file:/tmp/from-environment.db' },
      openai: { ...DEFAULT_CONFIG.openai, model: 'llama3.2', api_version: '2025-01-01-preview' },
      logging: { level: 'debug', log_content: false },
    });
  });

  test('trims the values of environment overrides', () => {
    const config = loadConfig(DEFAULTS_PATH, { PORT: ' 4000 ', HOST: ' 127.0.0.1\n', OPENAI_MODEL: '\tgpt-4o-mini ' });
    expect(config.server).toEqual({ port: 4000, host: '127.0.0.1', body_limit: '1mb', workers: 1, cors_origins: [] });
    expect(config.openai.model).toBe('gpt-4o-mini');
  });

  test('AZURE_OPENAI_DEPLOYMENT_NAME wins over OPENAI_MODEL', () => {
    const config = loadConfig(DEFAULTS_PATH, { OPENAI_MODEL: 'gpt-4o', AZURE_OPENAI_DEPLOYMENT_NAME: 'my-deployment' });
    expect(config.openai.model).toBe('my-deployment');
  });

  test('METRICS_ENABLED and METRICS_TOKEN set [metrics]; METRICS_ENABLED takes only true or false', () => {
    expect(loadConfig(DEFAULTS_PATH, { METRICS_ENABLED: 'false', METRICS_TOKEN: ' scrape-secret ' }).metrics).toEqual({ enabled: false, token: 'scrape-secret' });
    expect(loadConfig(DEFAULTS_PATH, { METRICS_ENABLED: 'true' }).metrics).toEqual({ enabled: true, token: '' });
    expect(() => loadConfig(DEFAULTS_PATH, { METRICS_ENABLED: 'off' })).toThrow(new ConfigError('Invalid configuration:\n  - metrics.enabled: expected true or false'));
  });

  test('does not carry one call\'s overrides into the next', () => {
    loadConfig(DEFAULTS_PATH, { DATABASE_URL: 'file:/tmp/first.db', PORT: '4000' });
    expect(loadConfig(DEFAULTS_PATH, {})).toEqual(DEFAULT_CONFIG);
  });

  test.each<[description: string, toml: string, environment: Environment, message: string]>([
    [
      'a negative pair count',
      '[chat]\nmax_conversation_pairs = -1',
      {},
      '  - chat.max_conversation_pairs: Too small: expected number to be >=0',
    ],
    ['a temperature above 2', '[openai]\ntemperature = 3', {}, '  - openai.temperature: Too big: expected number to be <=2'],
    [
      'a temperature that is not a number',
      '[openai]\ntemperature = "hot"',
      {},
      '  - openai.temperature: Invalid input: expected number, received string',
    ],
    ['a reasoning_model that is neither "auto" nor a boolean', '[openai]\nreasoning_model = "yes"', {}, '  - openai.reasoning_model: expected "auto", true or false'],
    [
      'an unknown log level',
      '[logging]\nlevel = "loud"',
      {},
      '  - logging.level: Invalid option: expected one of "trace"|"debug"|"info"|"warn"|"error"|"fatal"|"silent"',
    ],
    [
      'a body limit that is not a size',
      '[server]\nbody_limit = "lots"',
      {},
      '  - server.body_limit: expected a size such as "1mb" or "512kb"',
    ],
    ['an unknown key (a typo)', '[chat]\nmax_pairs = 3', {}, '  - chat: Unrecognized key: "max_pairs"'],
    ['an unknown section', '[chats]\nmax_conversation_pairs = 3', {}, '  - (root): Unrecognized key: "chats"'],
    ['PORT that is not a number', '', { PORT: 'abc' }, '  - server.port: expected a port number'],
    ['PORT above 65535', '', { PORT: '70000' }, '  - server.port: Too big: expected number to be <=65535'],
    ['PORT that is not an integer', '', { PORT: '8080.5' }, '  - server.port: expected a port number'],
    ['LOG_LEVEL in capitals', '', { LOG_LEVEL: 'DEBUG' }, '  - logging.level: Invalid option: expected one of "trace"|"debug"|"info"|"warn"|"error"|"fatal"|"silent"'],
    [
      'DATABASE_URL that is neither SQLite nor PostgreSQL',
      '',
      { DATABASE_URL: 'mysql://x' },
      '  - database.url: expected a SQLite URL such as "file:./data/chat.db" or a PostgreSQL URL such as "postgres://user@host:5432/chat"',
    ],
    ['a pool_size of 0', '[database]\npool_size = 0', {}, '  - database.pool_size: Too small: expected number to be >=1'],
    ['a negative statement_timeout_ms', '[database]\nstatement_timeout_ms = -1', {}, '  - database.statement_timeout_ms: Too small: expected number to be >=0'],
    ['a migrate_on_start that is not a boolean', '[database]\nmigrate_on_start = "no"', {}, '  - database.migrate_on_start: Invalid input: expected boolean, received string'],
    ['REDIS_URL that is not a Redis URL', '', { REDIS_URL: 'localhost:6379' }, '  - cluster.redis_url: expected a Redis URL such as "redis://localhost:6379"'],
    [
      'REDIS_URL on SQLite',
      '',
      { REDIS_URL: 'redis://127.0.0.1:6379' },
      "  - cluster.redis_url (REDIS_URL): multi-instance mode needs a PostgreSQL database (DATABASE_URL=postgres://...); a SQLite file is one process's",
    ],
    [
      'WORKERS above 1 without Redis',
      '',
      { WORKERS: '2', DATABASE_URL: 'postgres://db/chat' },
      '  - server.workers (WORKERS): 2 workers need a PostgreSQL DATABASE_URL and REDIS_URL, which the workers share',
    ],
    [
      'WORKERS above 1 on SQLite',
      '',
      { WORKERS: '3', REDIS_URL: 'redis://r' },
      [
        "  - cluster.redis_url (REDIS_URL): multi-instance mode needs a PostgreSQL database (DATABASE_URL=postgres://...); a SQLite file is one process's",
        '  - server.workers (WORKERS): 3 workers need a PostgreSQL DATABASE_URL and REDIS_URL, which the workers share',
      ].join('\n'),
    ],
    ['WORKERS that is neither a number nor "auto"', '', { WORKERS: 'many' }, '  - server.workers: expected a number of workers (1 or more) or "auto"'],
    ['WORKERS=0', '', { WORKERS: '0' }, '  - server.workers: Too small: expected number to be >=1'],
    ['an empty redis_prefix', '[cluster]\nredis_prefix = ""', {}, '  - cluster.redis_prefix: Too small: expected string to have >=1 characters'],
  ])('rejects %s, naming the key', (_description, toml, environment, message) => {
    const error = configErrorOf(() => loadConfig(DEFAULTS_PATH, { ...environment, CONFIG_PATH: writeOverlay(toml) }));
    expect(error.name).toBe('ConfigError');
    expect(error.message).toBe(`Invalid configuration:\n${message}`);
  });

  test('REDIS_URL and WORKERS set multi-instance mode on PostgreSQL; "auto" is one worker per core', () => {
    const config = loadConfig(DEFAULTS_PATH, { DATABASE_URL: 'postgres://db/chat', REDIS_URL: 'rediss://cache:6380/2', WORKERS: 'auto' });
    expect(config.cluster).toEqual({ instance_id: '', lease_seconds: 10, redis_url: 'rediss://cache:6380/2', redis_prefix: 'lss:' });
    expect(config.server.workers).toBe('auto');
    expect(workerCount(config)).toBe(availableParallelism());
    expect(workerCount(loadConfig(DEFAULTS_PATH, { DATABASE_URL: 'postgres://db/chat', REDIS_URL: 'redis://r', WORKERS: '3' }))).toBe(3);
  });

  test('lists every invalid key at once', () => {
    const overlay = writeOverlay('[openai]\ntemperature = 3\nmax_retries = 11\n');
    const error = configErrorOf(() => loadConfig(DEFAULTS_PATH, { CONFIG_PATH: overlay, PORT: 'abc' }));
    expect(error.message.split('\n')).toEqual([
      'Invalid configuration:',
      '  - server.port: expected a port number',
      '  - openai.temperature: Too big: expected number to be <=2',
      '  - openai.max_retries: Too big: expected number to be <=10',
    ]);
  });

  // Number() would read these as 16 and 1000: a mistyped PORT must not pick another port silently.
  test.each(['0x10', '1e3', '80.5', ''])('rejects PORT=%j', (port) => {
    const error = configErrorOf(() => loadConfig(DEFAULTS_PATH, { CONFIG_PATH: writeOverlay(`[server]\nport = ${JSON.stringify(port)}\n`) }));
    expect(error.message).toBe('Invalid configuration:\n  - server.port: expected a port number');
  });

  test.each<[description: string, name: string, prepare: (file: string) => void, message: (file: string) => string]>([
    [
      'a missing file',
      'missing.toml',
      () => undefined,
      (file) => `Cannot read config file ${file}: ENOENT: no such file or directory, open '${file}'`,
    ],
    [
      'a folder',
      'a-folder.toml',
      (file) => mkdirSync(file),
      (file) => `Cannot read config file ${file}: EISDIR: illegal operation on a directory, read`,
    ],
  ])('rejects %s as CONFIG_PATH, naming the file', (_description, name, prepare, message) => {
    const file = path.join(directory, name);
    prepare(file);
    const error = configErrorOf(() => loadConfig(DEFAULTS_PATH, { CONFIG_PATH: file }));
    expect(error.message).toBe(message(file));
  });

  test('rejects a CONFIG_PATH file that is not valid TOML, naming the file', () => {
    const overlay = writeOverlay('[chat\nmax_conversation_pairs = 2\n');
    const error = configErrorOf(() => loadConfig(DEFAULTS_PATH, { CONFIG_PATH: overlay }));
    expect(error.message.startsWith(`Config file ${overlay} is not valid TOML: `)).toBe(true);
  });

  test('rejects a defaults file that cannot be read, naming it', () => {
    const missing = path.join(directory, 'no-defaults.toml');
    const error = configErrorOf(() => loadConfig(missing, {}));
    expect(error.message).toBe(`Cannot read config file ${missing}: ENOENT: no such file or directory, open '${missing}'`);
  });

  test('resolves a relative CONFIG_PATH from the working directory', () => {
    const overlay = writeOverlay('[simulator]\ndelay_ms = 0\n');
    const config = loadConfig(DEFAULTS_PATH, { CONFIG_PATH: path.relative(process.cwd(), overlay) });
    expect(config.simulator).toEqual({ delay_ms: 0 });
  });
});
