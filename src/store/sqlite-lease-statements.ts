import type Database from 'better-sqlite3';
import { sqliteTime } from './sqlite-chat-statements';

/** The instance lease queries of the SQLite store. */
export class SqliteLeaseStatements {
  private readonly renew;
  private readonly release;
  private readonly releaseAll;

  constructor(database: Database.Database) {
    this.renew = database.prepare(
      `INSERT INTO "InstanceLease" ("instanceId", "startedAt", "expiresAt") VALUES (?, ?, ?)
       ON CONFLICT ("instanceId") DO UPDATE SET "expiresAt" = excluded."expiresAt"`,
    );
    this.release = database.prepare(`DELETE FROM "InstanceLease" WHERE "instanceId" = ?`);
    this.releaseAll = database.prepare(`DELETE FROM "InstanceLease"`);
  }

  /**
   * For the process that has just taken the owner lock: whoever held a lease before it is gone
   * (it held the lock), so its replies are swept at once rather than when its lease runs out, even
   * when its name was not this instance's (a server on port 0 is named by its process id).
   */
  endEarlierLeases(): void {
    this.releaseAll.run();
  }

  renewLease(instanceId: string, leaseMs: number): void {
    const now = Date.now();
    this.renew.run(instanceId, sqliteTime(new Date(now)), sqliteTime(new Date(now + leaseMs)));
  }

  releaseLease(instanceId: string): void {
    this.release.run(instanceId);
  }
}
