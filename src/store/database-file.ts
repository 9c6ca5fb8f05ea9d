import { statSync } from 'node:fs';

/**
 * The identity (device and inode) of the SQLite file a store opened. If the file is deleted or
 * replaced while the server runs, SQLite goes on writing to the open, now nameless, file, and
 * everything written is lost at the next start, which finds a new empty database at the path.
 * Comparing identities is how the server finds out.
 */
export class DatabaseFile {
  private readonly device: number;
  private readonly inode: number;

  constructor(readonly path: string) {
    const stats = statSync(path);
    this.device = stats.dev;
    this.inode = stats.ino;
  }

  /** @throws Error saying what happened when the file at `path` is gone or is another file. */
  check(): void {
    const stats = statSync(this.path, { throwIfNoEntry: false });
    if (!stats) throw new Error(`The database file ${this.path} is gone: writes since then are lost when the server stops.`);
    if (stats.dev !== this.device || stats.ino !== this.inode) {
      throw new Error(`The database file ${this.path} was replaced by another file: writes since then go to the old one.`);
    }
  }
}
