import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/build-service';
import { TSX_LOADER } from './support/server-process';

/**
 * A service holds in memory what its configuration uses: on SQLite alone it loads neither `pg`
 * (with Prisma's adapter) nor `ioredis`, and the tokenizer's tables wait for the first turn.
 * Together they are about 70 MiB of a started service's RSS.
 *
 * In a process of its own, built as `main.ts` builds it: Node's `require.cache` says what was
 * loaded (jest's module registry would not). The script then loads the PostgreSQL store and the
 * Redis cluster modules itself, to show that the check sees those drivers when they are loaded.
 */
test('a SQLite service without Redis loads no PostgreSQL or Redis driver, and no tokenizer tables before a turn', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'modules-'));
  try {
    const source = (file: string) => JSON.stringify(path.join(PROJECT_ROOT, 'src', file));
    const script = `
      const path = require('node:path');
      const { loadConfig } = require(${source('config/load-config.ts')});
      const { resolveProvider } = require(${source('config/resolve-provider.ts')});
      const { buildService } = require(${source('build-service.ts')});
      const { createLogger } = require(${source('logging/create-logger.ts')});
      const loaded = () => {
        const files = Object.keys(require.cache);
        const has = (pattern) => files.some((file) => pattern.test(file));
        return {
          pg: has(/node_modules\\/pg\\//),
          prismaAdapterPg: has(/node_modules\\/@prisma\\/adapter-pg\\//),
          ioredis: has(/node_modules\\/ioredis\\//),
          tokenizerTables: has(/gpt-tokenizer.*bpeRanks/),
        };
      };
      (async () => {
        const environment = {
          DATABASE_URL: 'file:' + path.join(${JSON.stringify(dir)}, 'chat.db'),
          AZURE_OPENAI_API_KEY: 'test-key',
          AZURE_OPENAI_ENDPOINT: 'http://127.0.0.1:9',
          AZURE_OPENAI_DEPLOYMENT_NAME: 'gpt-4o-mini',
        };
        const config = loadConfig(${source('../config/default.toml')}, environment);
        const service = await buildService({ config, providerSettings: resolveProvider(config, environment), logger: createLogger('silent') });
        const started = loaded();
        require(${source('store/open-postgresql-store.ts')});
        require(${source('cluster/redis-cluster.ts')});
        console.log(JSON.stringify({ started, afterLoadingThem: loaded() }));
        await service.lease.stop();
        await service.store.close();
      })().catch((error) => { console.error(error); process.exitCode = 1; });`;
    const run = spawnSync(process.execPath, ['--import', TSX_LOADER, '-e', script], { encoding: 'utf8', timeout: 60_000, cwd: dir });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({
      started: { pg: false, prismaAdapterPg: false, ioredis: false, tokenizerTables: false },
      afterLoadingThem: { pg: true, prismaAdapterPg: true, ioredis: true, tokenizerTables: false },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
