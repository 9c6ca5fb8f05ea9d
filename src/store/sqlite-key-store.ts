import type { ApiKeyRecord, KeyStore } from '../auth/api-keys';
import { waitForLock } from './lock-wait';
import type { PrismaKeyStore } from './prisma-key-store';
import type { SqliteTurnStatements } from './sqlite-turn-statements';

/**
 * API keys on SQLite: the lookup every request makes runs on a prepared statement, the rest
 * through Prisma; like the chat store, every call waits for other processes' locks on timers.
 */
export class SqliteKeyStore implements KeyStore {
  constructor(
    private readonly portable: PrismaKeyStore,
    private readonly statements: SqliteTurnStatements,
    private readonly lockWaitMs: number,
  ) {}

  insertKey(record: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>) {
    return this.wait(() => this.portable.insertKey(record));
  }

  findKeysByPrefix(prefix: string) {
    return this.wait(() => this.statements.findKeysByPrefix(prefix));
  }

  listKeys() {
    return this.wait(() => this.portable.listKeys());
  }

  revokeKey(id: string) {
    return this.wait(() => this.portable.revokeKey(id));
  }

  countKeys() {
    return this.wait(() => this.portable.countKeys());
  }

  private wait<T>(operation: () => T | Promise<T>): Promise<T> {
    return waitForLock(operation, this.lockWaitMs);
  }
}
