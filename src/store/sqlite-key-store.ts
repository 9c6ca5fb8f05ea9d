import type { ApiKeyRecord, KeyStore } from '../auth/api-keys';
import { waitForLock } from './lock-wait';
import type { SqliteKeyStatements } from './sqlite-key-statements';

/** API keys on SQLite; like the chat store, every call waits for other processes' locks on timers. */
export class SqliteKeyStore implements KeyStore {
  constructor(
    private readonly statements: SqliteKeyStatements,
    private readonly lockWaitMs: number,
  ) {}

  insertKey(record: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>) {
    return this.wait(() => this.statements.insertKey(record));
  }

  insertFirstKey(record: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>) {
    return this.wait(() => this.statements.insertFirstKey(record));
  }

  findKeysByPrefix(prefix: string) {
    return this.wait(() => this.statements.findKeysByPrefix(prefix));
  }

  listKeys() {
    return this.wait(() => this.statements.listKeys());
  }

  revokeKey(id: string) {
    return this.wait(() => this.statements.revokeKey(id));
  }

  private wait<T>(operation: () => T | Promise<T>): Promise<T> {
    return waitForLock(operation, this.lockWaitMs);
  }
}
