import type { PrismaPg } from '@prisma/adapter-pg';
import { mapPostgresqlError } from './map-postgresql-error';

/** Prisma's PostgreSQL driver adapter once connected, and what runs a statement on it (the pool, or one transaction). */
type Adapter = Awaited<ReturnType<PrismaPg['connect']>>;
type Queryable = Pick<Adapter, 'queryRaw' | 'executeRaw'>;
type ArgTypes = Parameters<Adapter['queryRaw']>[0]['argTypes'];

/** Raw statements with `$1…` parameters; failures to reach the database come out as AppError `service_unavailable`. */
export interface SqlRunner {
  /** Rows as objects keyed by column name: timestamps as ISO text (`…+00:00`), int8 as text. */
  rows<Row>(sql: string, ...parameters: unknown[]): Promise<Row[]>;
  /** @returns how many rows the statement changed. */
  execute(sql: string, ...parameters: unknown[]): Promise<number>;
}

/**
 * The PostgreSQL stores' one way to the database: SQL on Prisma's `pg` driver adapter, errors
 * mapped once.
 *
 * The statements go to the adapter itself rather than through a PrismaClient's `$queryRaw`: every
 * query here is hand-written SQL, and the client's request pipeline around it cost about 1.2 ms
 * of CPU per statement (8.2 ms per turn on this project's benchmark machine, 3.1 ms on the adapter).
 */
export class PostgresqlSql implements SqlRunner {
  private readonly runner: SqlRunner;
  private closing: Promise<void> | undefined;

  constructor(private readonly adapter: Adapter) {
    this.runner = sqlRunner(adapter);
  }

  rows<Row>(sql: string, ...parameters: unknown[]): Promise<Row[]> {
    return this.runner.rows<Row>(sql, ...parameters);
  }

  execute(sql: string, ...parameters: unknown[]): Promise<number> {
    return this.runner.execute(sql, ...parameters);
  }

  /** Runs `work` in one transaction (READ COMMITTED, so each statement sees what committed before it). */
  async transaction<T>(work: (transaction: SqlRunner) => Promise<T>): Promise<T> {
    let transaction: Awaited<ReturnType<Adapter['startTransaction']>>;
    try {
      transaction = await this.adapter.startTransaction();
    } catch (error) {
      throw mapPostgresqlError(error);
    }
    const runner = sqlRunner(transaction);
    try {
      const result = await work(runner);
      await runner.execute('COMMIT');
      await transaction.commit();
      return result;
    } catch (error) {
      await runner.execute('ROLLBACK').catch(() => undefined);
      await transaction.rollback();
      throw mapPostgresqlError(error);
    }
  }

  /** Ends the pool; the chat and key stores share it, so a second call waits for the first. */
  close(): Promise<void> {
    this.closing ??= this.adapter.dispose();
    return this.closing;
  }
}

function sqlRunner(client: Queryable): SqlRunner {
  return {
    async rows<Row>(sql: string, ...parameters: unknown[]) {
      try {
        const { columnNames, rows } = await client.queryRaw({ sql, args: parameters, argTypes: argTypes(parameters) });
        return rows.map((row) => Object.fromEntries(columnNames.map((name, index) => [name, row[index]])) as Row);
      } catch (error) {
        throw mapPostgresqlError(error);
      }
    },
    async execute(sql: string, ...parameters: unknown[]) {
      try {
        return await client.executeRaw({ sql, args: parameters, argTypes: argTypes(parameters) });
      } catch (error) {
        throw mapPostgresqlError(error);
      }
    },
  };
}

/**
 * The statements cast their parameters where PostgreSQL cannot infer a type, so the adapter only
 * needs to know lists from scalars; a Date goes out as UTC text (see openPostgresqlStore's time zone).
 */
function argTypes(parameters: unknown[]): ArgTypes {
  return parameters.map((parameter) => ({ scalarType: 'unknown', arity: Array.isArray(parameter) ? 'list' : 'scalar' })) as ArgTypes;
}
