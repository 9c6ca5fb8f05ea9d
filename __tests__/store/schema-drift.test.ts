/**
 * The migrations of each engine are written by hand; these tests keep them true to the models.
 * Each engine's migrated database (tables, columns, types, nullability, primary keys, indexes) is
 * compared with the models as Prisma read them when it generated that engine's client
 * (src/store/generated/<engine>/model-metadata.json, see scripts/write-model-metadata.mjs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { PROJECT_ROOT } from '../../src/build-service';
import { Prisma as PostgresqlPrisma } from '../../src/store/generated/postgresql/client';
import postgresqlModels from '../../src/store/generated/postgresql/model-metadata.json';
import { Prisma as SqlitePrisma } from '../../src/store/generated/sqlite/client';
import sqliteModels from '../../src/store/generated/sqlite/model-metadata.json';
import { migratePostgresql } from '../../src/store/migrate-postgresql';
import { migrateSqlite } from '../../src/store/migrate-sqlite';
import { describePostgres } from '../support/postgres-database';
import { describeDrift, shapeOfModels, shapeOfPostgresql, shapeOfSqlite, type Datamodel } from '../support/schema-shape';

const SQLITE_MODELS = sqliteModels as unknown as Datamodel;
const POSTGRESQL_MODELS = postgresqlModels as unknown as Datamodel;

let folder: string;

beforeAll(() => {
  folder = mkdtempSync(path.join(tmpdir(), 'schema-drift-'));
});

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

/** A fresh SQLite file with every SQLite migration applied. */
function migratedSqlite(name: string): string {
  const file = path.join(folder, `${name}.db`);
  migrateSqlite(file, path.join(PROJECT_ROOT, 'prisma', 'migrations'));
  return file;
}

test.each([
  ['sqlite', SQLITE_MODELS, SqlitePrisma],
  ['postgresql', POSTGRESQL_MODELS, PostgresqlPrisma],
] as const)('the %s model metadata is the one its generated client was made from', (_engine, models, prisma) => {
  const namespace = prisma as unknown as Record<string, Record<string, string>>;
  expect(models.models.map((model) => model.name).sort()).toEqual(Object.values(prisma.ModelName).sort());
  for (const model of models.models) {
    const scalars = model.fields.filter((field) => field.kind === 'scalar').map((field) => field.name);
    expect(scalars).toEqual(Object.values(namespace[`${model.name}ScalarFieldEnum`]!));
  }
});

test('both engines have the same models and fields', () => {
  const fieldsOf = (models: Datamodel) => models.models.map((model) => [model.name, model.fields.map((field) => [field.name, field.isRequired])]);
  expect(fieldsOf(POSTGRESQL_MODELS)).toEqual(fieldsOf(SQLITE_MODELS));
});

test('the migrated SQLite database matches the models', () => {
  expect(describeDrift(shapeOfModels(SQLITE_MODELS, 'sqlite'), shapeOfSqlite(migratedSqlite('current')))).toEqual([]);
});

test('on SQLite, a column or an index that differs from the models is reported', () => {
  const file = migratedSqlite('altered');
  const database = new Database(file);
  database.exec(`
    ALTER TABLE "Chat" DROP COLUMN "titleSource";
    ALTER TABLE "Chat" ADD COLUMN "pinned" BOOLEAN;
    DROP INDEX "ApiKey_prefix_idx";
    CREATE INDEX "ApiKey_hash_idx" ON "ApiKey"("hash");
  `);
  database.close();
  expect(describeDrift(shapeOfModels(SQLITE_MODELS, 'sqlite'), shapeOfSqlite(file))).toEqual([
    'ApiKey: index missing from the database: ApiKey_prefix_idx: index (prefix)',
    'ApiKey: index in the database, not in the models: ApiKey_hash_idx: index (hash)',
    'Chat.pinned: column in the database (BOOLEAN NULL), not in the models',
    'Chat.titleSource: column missing from the database (models: TEXT NULL)',
  ]);
});

describePostgres('on PostgreSQL', (databases) => {
  test('the migrated database matches the models', async () => {
    await migratePostgresql({ connectionString: databases.url, migrationsDir: path.join(PROJECT_ROOT, 'prisma', 'postgresql', 'migrations') });
    expect(describeDrift(shapeOfModels(POSTGRESQL_MODELS, 'postgresql'), await shapeOfPostgresql(databases.url))).toEqual([]);
  });

  test('a type, a nullability, a primary key or an index that differs from the models is reported', async () => {
    const url = await databases.create();
    await migratePostgresql({ connectionString: url, migrationsDir: path.join(PROJECT_ROOT, 'prisma', 'postgresql', 'migrations') });
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`
        ALTER TABLE "Message" ALTER COLUMN "createdAt" TYPE TIMESTAMP(3);
        ALTER TABLE "Message" ALTER COLUMN "model" SET NOT NULL;
        ALTER TABLE "ApiKey" DROP CONSTRAINT "ApiKey_pkey";
        ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("prefix");
        DROP INDEX "Message_id_key";
        CREATE INDEX "Message_id_key" ON "Message"("id");
      `);
    } finally {
      await client.end();
    }
    expect(describeDrift(shapeOfModels(POSTGRESQL_MODELS, 'postgresql'), await shapeOfPostgresql(url))).toEqual([
      'ApiKey: primary key (prefix) in the database, (id) in the models',
      'Message.createdAt: the database has timestamp(3) without time zone NOT NULL, the models timestamp(3) with time zone NOT NULL',
      'Message.model: the database has text NOT NULL, the models text NULL',
      'Message: index missing from the database: Message_id_key: unique (id)',
      'Message: index in the database, not in the models: Message_id_key: index (id)',
    ]);
  });
});
