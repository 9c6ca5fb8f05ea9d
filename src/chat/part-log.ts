import type { StreamEntry, UiMessagePart } from './ui-message-part';

/**
 * Where a generation keeps its parts for the responses that read them. It lives in the process's
 * memory and goes away with the generation: another instance that resumes the reply asks this one
 * for them (src/cluster/), so that a reply nobody follows elsewhere costs no shared store per part.
 */
export interface PartLog {
  /** Adds `part` with the next id (ids count up from 1). */
  append(part: UiMessagePart): StreamEntry;
  /** The parts with an id above `lastId`, in order. */
  after(lastId: number): StreamEntry[];
  /** The id of the last part (0 before the first). */
  readonly lastId: number;
}

export class MemoryPartLog implements PartLog {
  private readonly entries: StreamEntry[] = [];

  append(part: UiMessagePart): StreamEntry {
    const entry = { id: this.entries.length + 1, part };
    this.entries.push(entry);
    return entry;
  }

  get lastId(): number {
    return this.entries.length;
  }

  after(lastId: number): StreamEntry[] {
    return lastId >= this.entries.length ? [] : this.entries.slice(Math.max(0, lastId));
  }
}
