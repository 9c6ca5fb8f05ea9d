import type { PrismaClient } from './generated/postgresql/client';
import { mapPostgresqlError } from './map-postgresql-error';

type Queryable = Pick<PrismaClient, '$queryRawUnsafe' | '$executeRawUnsafe'>;

/** Raw statements with `$1…` parameters; failures to reach the database come out as AppError `service_unavailable`. */
export interface SqlRunner {
  rows<Row>(sql: string, ...parameters: unknown[]): Promise<Row[]>;
  /** @returns how many rows the statement changed. */
  execute(sql: string, ...parameters: unknown[]): Promise<number>;
}

/** The PostgreSQL stores' one way to the database: raw SQL on the Prisma client, errors mapped once. */
export class PostgresqlSql implements SqlRunner {
  private readonly runner: SqlRunner;

  constructor(private readonly prisma: PrismaClient) {
    this.runner = sqlRunner(prisma);
  }

  rows<Row>(sql: string, ...parameters: unknown[]): Promise<Row[]> {
    return this.runner.rows<Row>(sql, ...parameters);
  }

  execute(sql: string, ...parameters: unknown[]): Promise<number> {
    return this.runner.execute(sql, ...parameters);
  }

  /** Runs `work` in one transaction (READ COMMITTED, so each statement sees what committed before it). */
  async transaction<T>(work: (transaction: SqlRunner) => Promise<T>): Promise<T> {
    try {
      return await this.prisma.$transaction((transaction) => work(sqlRunner(transaction)));
    } catch (error) {
      throw mapPostgresqlError(error);
    }
  }

  close(): Promise<void> {
    return this.prisma.$disconnect();
  }
}

function sqlRunner(client: Queryable): SqlRunner {
  return {
    async rows<Row>(sql: string, ...parameters: unknown[]) {
      try {
        return await client.$queryRawUnsafe<Row[]>(sql, ...parameters);
      } catch (error) {
        throw mapPostgresqlError(error);
      }
    },
    async execute(sql: string, ...parameters: unknown[]) {
      try {
        return await client.$executeRawUnsafe(sql, ...parameters);
      } catch (error) {
        throw mapPostgresqlError(error);
      }
    },
  };
}
