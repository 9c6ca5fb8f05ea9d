// Generates one Prisma client per engine from the one set of models in prisma/models.prisma:
// src/store/generated/sqlite and src/store/generated/postgresql.
//
// For each engine, prisma/<engine>/engine.prisma (datasource and generators) and the models are
// joined into prisma/<engine>/schema.prisma (not committed), with the engine's native types
// applied to the models (see POSTGRESQL_TYPES), and `prisma generate` runs on that file.
//
// `prisma generate` does not run the native schema engine, but the CLI still checks that one
// exists and tries to download it first. Where the engine host is unreachable (offline
// machines, locked-down CI) that download fails, so we point the check at an existing file.
// Where PRISMA_SCHEMA_ENGINE_BINARY is already set, it is left alone.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cli = require.resolve('prisma/build/index.js');
const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1';

/**
 * The PostgreSQL column types of the portable models: timestamps keep their time zone (and
 * Prisma's millisecond precision), and autoincrement keys are 64-bit, as an SQLite INTEGER
 * PRIMARY KEY (a rowid) already is: `Message.seq` counts every message ever written, in every
 * chat, and a sequence also spends numbers on rolled-back inserts. Widening a full table later
 * rewrites it under an exclusive lock. Fields that hold such a key are named `...Seq`.
 */
function toPostgresql(line) {
  return line
    .replace(/^(\s+\w+\s+DateTime\??)(\s.*)?$/, (_line, field, rest = '') => `${field}${rest.trimEnd()} @db.Timestamptz(3)`)
    .replace(/^(\s+\w+\s+)Int(\s+@id\s+@default\(autoincrement\(\)\).*)$/, '$1BigInt$2')
    .replace(/^(\s+\w*[sS]eq\s+)Int\b/, '$1BigInt');
}

const ENGINES = [
  { name: 'sqlite', field: (line) => line },
  { name: 'postgresql', field: toPostgresql },
];

const models = readFileSync(path.join(root, 'prisma', 'models.prisma'), 'utf8');
for (const engine of ENGINES) {
  const folder = path.join(root, 'prisma', engine.name);
  const header = readFileSync(path.join(folder, 'engine.prisma'), 'utf8');
  const schemaPath = path.join(folder, 'schema.prisma');
  writeFileSync(
    schemaPath,
    [
      `// Assembled by \`npm run generate\` from prisma/${engine.name}/engine.prisma and prisma/models.prisma.`,
      '// Do not edit: edit those files and run `npm run generate` again.',
      '',
      header,
      models.split('\n').map(engine.field).join('\n'),
    ].join('\n'),
  );
  const result = spawnSync(process.execPath, [cli, 'generate', '--schema', schemaPath], { stdio: 'inherit', env, cwd: root });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
