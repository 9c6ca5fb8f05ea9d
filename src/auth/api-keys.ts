import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/** A key as stored: never the key itself. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  hash: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface KeyStore {
  insertKey(record: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>): Promise<ApiKeyRecord>;
  findKeysByPrefix(prefix: string): Promise<ApiKeyRecord[]>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked; null if there is no such key. */
  revokeKey(id: string): Promise<ApiKeyRecord | null>;
  /**
   * Inserts the key only if no key exists at all, atomically: of several instances starting
   * together on an empty database, exactly one inserts. Undefined when a key already existed.
   */
  insertFirstKey(record: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>): Promise<ApiKeyRecord | undefined>;
}

const KEY_PREFIX = 'lss_';
/** lss_ + 43 base64url characters: 256 random bits. */
const KEY_PATTERN = /^lss_[A-Za-z0-9_-]{43}$/;
const PREFIX_LENGTH = KEY_PREFIX.length + 8;

export type KeyCheck = { ok: true; key: ApiKeyRecord } | { ok: false; reason: 'unknown' | 'revoked' };

/** Creates, checks, lists and revokes API keys. */
export class ApiKeys {
  constructor(private readonly store: KeyStore) {}

  /** A new key; the returned `key` is the only time it exists outside its owner's hands. */
  async create(name: string): Promise<{ key: string; record: ApiKeyRecord }> {
    const { key, fields } = newKey(name);
    return { key, record: await this.store.insertKey(fields) };
  }

  /**
   * Finds the key by its public prefix, then compares hashes in constant time, so the time taken
   * says nothing about how much of a guessed key was right.
   */
  async check(key: string): Promise<KeyCheck> {
    if (!KEY_PATTERN.test(key)) return { ok: false, reason: 'unknown' };
    const presented = Buffer.from(hashKey(key), 'hex');
    for (const candidate of await this.store.findKeysByPrefix(key.slice(0, PREFIX_LENGTH))) {
      if (!timingSafeEqual(presented, Buffer.from(candidate.hash, 'hex'))) continue;
      return candidate.revokedAt ? { ok: false, reason: 'revoked' } : { ok: true, key: candidate };
    }
    return { ok: false, reason: 'unknown' };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.store.listKeys();
  }

  revoke(id: string): Promise<ApiKeyRecord | null> {
    return this.store.revokeKey(id);
  }

  /**
   * On the very first start (no key at all), creates the key "default" so the service can be used
   * at once; once only, even when several instances start together.
   */
  async createFirstKey(): Promise<{ key: string; record: ApiKeyRecord } | undefined> {
    const { key, fields } = newKey('default');
    const record = await this.store.insertFirstKey(fields);
    return record && { key, record };
  }
}

function newKey(name: string) {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { key, fields: { id: randomUUID(), name, prefix: key.slice(0, PREFIX_LENGTH), hash: hashKey(key) } };
}

function hashKey(key: string): string {
  // Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
  return createHash('sha256').update(key).digest('hex');
}
