import Database from 'better-sqlite3';
import { Client } from 'pg';

/** What the drift test compares: per table, its columns, primary key and indexes. */
export type SchemaShape = Record<string, TableShape>;

export interface TableShape {
  /** Column name → its type as the database names it, and NULL or NOT NULL. */
  columns: Record<string, string>;
  primaryKey: string[];
  /** `name: unique (a, b)` or `name: index (a, b)`, sorted. */
  indexes: string[];
}

/** The parts of Prisma's DMMF (the generated model-metadata.json) read here. */
export interface Datamodel {
  models: Array<{
    name: string;
    dbName: string | null;
    fields: Array<{ name: string; dbName?: string | null; kind: string; type: string; isRequired: boolean; isId: boolean; nativeType: [string, string[]] | null }>;
    primaryKey: { fields: string[] } | null;
  }>;
  indexes: Array<{ model: string; type: 'id' | 'unique' | 'normal' | 'fulltext'; dbName?: string | null; fields: Array<{ name: string }> }>;
}

export type Engine = 'sqlite' | 'postgresql';

/** The database type Prisma's migrations give each scalar type (and native type) on `engine`. */
function columnType(engine: Engine, field: Datamodel['models'][number]['fields'][number]): string {
  if (field.nativeType) {
    const [name, args] = field.nativeType;
    if (engine === 'postgresql' && name === 'Timestamptz') return `timestamp(${args[0] ?? 3}) with time zone`;
    throw new Error(`the drift test does not know the native type @db.${name} on ${engine}: teach columnType()`);
  }
  const types: Record<Engine, Record<string, string>> = {
    sqlite: { String: 'TEXT', Int: 'INTEGER', BigInt: 'INTEGER', Boolean: 'BOOLEAN', DateTime: 'DATETIME', Float: 'REAL' },
    postgresql: { String: 'text', Int: 'integer', BigInt: 'bigint', Boolean: 'boolean', DateTime: 'timestamp(3) without time zone', Float: 'double precision' },
  };
  const type = types[engine][field.type];
  if (!type) throw new Error(`the drift test does not know the type ${field.type} on ${engine}: teach columnType()`);
  return type;
}

/** The schema the models describe on `engine`, with Prisma's default names for indexes. */
export function shapeOfModels(datamodel: Datamodel, engine: Engine): SchemaShape {
  const shape: SchemaShape = {};
  for (const model of datamodel.models) {
    const table = model.dbName ?? model.name;
    const columnOf = (fieldName: string) => {
      const field = model.fields.find((candidate) => candidate.name === fieldName)!;
      return field.dbName ?? field.name;
    };
    const columns: Record<string, string> = {};
    for (const field of model.fields.filter((candidate) => candidate.kind === 'scalar' || candidate.kind === 'enum')) {
      columns[field.dbName ?? field.name] = `${columnType(engine, field)} ${field.isRequired ? 'NOT NULL' : 'NULL'}`;
    }
    const idField = model.fields.find((field) => field.isId);
    const primaryKey = idField ? [columnOf(idField.name)] : (model.primaryKey?.fields ?? []).map(columnOf);
    const indexes = datamodel.indexes
      .filter((index) => index.model === model.name && (index.type === 'unique' || index.type === 'normal'))
      .map((index) => {
        const names = index.fields.map((field) => columnOf(field.name));
        const kind = index.type === 'unique' ? 'unique' : 'index';
        const name = index.dbName ?? `${table}_${names.join('_')}_${index.type === 'unique' ? 'key' : 'idx'}`;
        return `${name}: ${kind} (${names.join(', ')})`;
      })
      .sort();
    shape[table] = { columns, primaryKey, indexes };
  }
  return shape;
}

/** The schema of the SQLite file at `databasePath`, Prisma's history table left out. */
export function shapeOfSqlite(databasePath: string): SchemaShape {
  const database = new Database(databasePath, { readonly: true });
  try {
    const shape: SchemaShape = {};
    const tables = database
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_prisma_migrations'`)
      .all() as { name: string }[];
    for (const { name: table } of tables) {
      const info = database.pragma(`table_info("${table}")`) as { name: string; type: string; notnull: number; pk: number }[];
      const columns = Object.fromEntries(info.map((column) => [column.name, `${column.type} ${column.notnull ? 'NOT NULL' : 'NULL'}`]));
      const primaryKey = info.filter((column) => column.pk > 0).sort((a, b) => a.pk - b.pk).map((column) => column.name);
      const list = database.pragma(`index_list("${table}")`) as { name: string; unique: number; origin: string }[];
      const indexes = list
        .filter((index) => index.origin !== 'pk')
        .map((index) => {
          const names = (database.pragma(`index_info("${index.name}")`) as { seqno: number; name: string }[])
            .sort((a, b) => a.seqno - b.seqno)
            .map((column) => column.name);
          return `${index.name}: ${index.unique ? 'unique' : 'index'} (${names.join(', ')})`;
        })
        .sort();
      shape[table] = { columns, primaryKey, indexes };
    }
    return shape;
  } finally {
    database.close();
  }
}

/** The schema of the PostgreSQL database at `url` (its current schema), Prisma's history table left out. */
export async function shapeOfPostgresql(url: string): Promise<SchemaShape> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const shape: SchemaShape = {};
    const { rows: columns } = await client.query<{ table: string; column: string; type: string; nullable: boolean }>(
      `SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS "type", NOT a.attnotnull AS "nullable"
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> '_prisma_migrations' AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY c.relname, a.attnum`,
    );
    for (const row of columns) {
      shape[row.table] ??= { columns: {}, primaryKey: [], indexes: [] };
      shape[row.table]!.columns[row.column] = `${row.type} ${row.nullable ? 'NULL' : 'NOT NULL'}`;
    }
    const { rows: indexes } = await client.query<{ table: string; name: string; unique: boolean; primary: boolean; columns: string[] }>(
      `SELECT c.relname AS "table", i.relname AS "name", x.indisunique AS "unique", x.indisprimary AS "primary",
         ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.position) AS "columns"
       FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relname <> '_prisma_migrations'`,
    );
    for (const index of indexes) {
      const table = shape[index.table]!;
      if (index.primary) table.primaryKey = index.columns;
      else table.indexes.push(`${index.name}: ${index.unique ? 'unique' : 'index'} (${index.columns.join(', ')})`);
    }
    for (const table of Object.values(shape)) table.indexes.sort();
    return shape;
  } finally {
    await client.end();
  }
}

/** Every difference between the database and the models, one line each; empty when they agree. */
export function describeDrift(models: SchemaShape, database: SchemaShape): string[] {
  const drift: string[] = [];
  for (const table of union(Object.keys(models), Object.keys(database))) {
    const expected = models[table];
    const actual = database[table];
    if (!actual) drift.push(`${table}: table missing from the database`);
    if (!expected) drift.push(`${table}: table in the database, not in the models`);
    if (!expected || !actual) continue;
    for (const column of union(Object.keys(expected.columns), Object.keys(actual.columns))) {
      const want = expected.columns[column];
      const have = actual.columns[column];
      if (want === have) continue;
      if (!have) drift.push(`${table}.${column}: column missing from the database (models: ${want})`);
      else if (!want) drift.push(`${table}.${column}: column in the database (${have}), not in the models`);
      else drift.push(`${table}.${column}: the database has ${have}, the models ${want}`);
    }
    if (expected.primaryKey.join(', ') !== actual.primaryKey.join(', ')) {
      drift.push(`${table}: primary key (${actual.primaryKey.join(', ')}) in the database, (${expected.primaryKey.join(', ')}) in the models`);
    }
    for (const index of expected.indexes.filter((candidate) => !actual.indexes.includes(candidate))) drift.push(`${table}: index missing from the database: ${index}`);
    for (const index of actual.indexes.filter((candidate) => !expected.indexes.includes(candidate))) drift.push(`${table}: index in the database, not in the models: ${index}`);
  }
  return drift;
}

function union(first: string[], second: string[]): string[] {
  return [...new Set([...first, ...second])].sort();
}
