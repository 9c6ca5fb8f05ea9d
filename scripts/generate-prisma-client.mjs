// Generates the Prisma client into src/store/generated.
//
// `prisma generate` does not run the native schema engine, but the CLI still checks that one
// exists and tries to download it first. Where the engine host is unreachable (offline
// machines, locked-down CI) that download fails, so we point the check at an existing file.
// Where PRISMA_SCHEMA_ENGINE_BINARY is already set, it is left alone.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cli = require.resolve('prisma/build/index.js');
const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1';

const result = spawnSync(process.execPath, [cli, 'generate'], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
