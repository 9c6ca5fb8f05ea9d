import type { ApiKeyRecord } from '../auth/api-keys';
import type { PrismaClient } from './generated/client';
import { PrismaKeyStore } from './prisma-key-store';
import type { SqliteTurnStatements } from './sqlite-turn-statements';

/** API keys on SQLite: the lookup every request makes runs on a prepared statement. */
export class SqliteKeyStore extends PrismaKeyStore {
  constructor(
    prisma: PrismaClient,
    private readonly statements: SqliteTurnStatements,
  ) {
    super(prisma);
  }

  override async findKeysByPrefix(prefix: string): Promise<ApiKeyRecord[]> {
    return this.statements.findKeysByPrefix(prefix);
  }
}
