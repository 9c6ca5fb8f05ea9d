import { createHmac, timingSafeEqual } from 'node:crypto';

/** A token for one chat's event stream, and when it stops working. */
export interface StreamTokenGrant {
  token: string;
  expiresAt: Date;
}

export interface StreamTokensOptions {
  /**
   * The signing key: the same for every process that must accept the tokens of the others (every
   * instance and worker of a deployment). Asked again after a failure, and every `refreshMs` with
   * the key in use (`known`), so that processes that parted (a shared store that lost it) agree again.
   */
  secret: (known?: Buffer) => Promise<Buffer>;
  /** Default 60 s. */
  refreshMs?: number;
  ttlSeconds: number;
  now?: () => number;
}

/** payload.signature: the payload is base64url JSON, the signature 32 bytes of HMAC-SHA256. */
const TOKEN_PATTERN = /^([A-Za-z0-9_-]{1,1024})\.([A-Za-z0-9_-]{43})$/;
/** Signed text starts with it, so that no other use of the same secret can make a valid token. */
const PURPOSE = 'lss-stream-token-v1.';

interface Claims {
  chatId: string;
  ownerId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/**
 * Short-lived tokens that open one chat's event stream for one owner: a browser's EventSource can
 * send no Authorization header, so it carries one in its URL. Stateless (an HMAC over chat, owner
 * and expiry), so any instance sharing the secret checks them without a lookup; the price is that
 * a token cannot be revoked before it expires, which its short life bounds.
 */
export class StreamTokens {
  private readonly now: () => number;
  private secret: Promise<Buffer> | undefined;
  private current: { key: Buffer; at: number } | undefined;

  constructor(private readonly options: StreamTokensOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * A token for `ownerId`'s chat `chatId`, for the configured lifetime or until `notAfter` when
   * that comes first (the end of the credential it was asked with).
   * @throws what `secret` throws (AppError service_unavailable when the shared store is away).
   */
  async issue(grant: { chatId: string; ownerId: string; notAfter?: Date }): Promise<StreamTokenGrant> {
    const lifetimeEnd = this.now() + this.options.ttlSeconds * 1000;
    const expiresAt = Math.min(lifetimeEnd, grant.notAfter?.getTime() ?? lifetimeEnd);
    const claims: Claims = { chatId: grant.chatId, ownerId: grant.ownerId, expiresAt };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const signature = this.sign(await this.key(), payload).toString('base64url');
    return { token: `${payload}.${signature}`, expiresAt: new Date(expiresAt) };
  }

  /**
   * The owner `token` was issued to, when it is genuine, unexpired and for chat `chatId`;
   * undefined otherwise. The signature is compared in constant time, before the payload is read.
   * @throws what `secret` throws.
   */
  async ownerOf(token: string, chatId: string): Promise<string | undefined> {
    const match = TOKEN_PATTERN.exec(token);
    if (!match) return undefined;
    const [, payload, signature] = match as unknown as [string, string, string];
    // Compared as text: decoding would let several spellings of the last character pass.
    const expected = Buffer.from(this.sign(await this.key(), payload).toString('base64url'));
    if (!timingSafeEqual(expected, Buffer.from(signature))) return undefined;
    const claims = parseClaims(payload);
    if (!claims || claims.chatId !== chatId || claims.expiresAt <= this.now()) return undefined;
    return claims.ownerId;
  }

  /** The key in use; once there is one, a failed refresh keeps it (tokens work through an outage of the store). */
  private key(): Promise<Buffer> {
    const { current } = this;
    if (current && this.now() - current.at < (this.options.refreshMs ?? 60_000)) return Promise.resolve(current.key);
    this.secret ??= this.options
      .secret(current?.key)
      .then((key) => {
        this.current = { key, at: this.now() };
        return key;
      })
      .catch((error: unknown) => {
        if (!current) throw error;
        this.current = { key: current.key, at: this.now() };
        return current.key;
      })
      .finally(() => {
        this.secret = undefined;
      });
    return this.secret;
  }

  private sign(key: Buffer, payload: string): Buffer {
    return createHmac('sha256', key).update(PURPOSE + payload).digest();
  }
}

/** Only tokens this class signed get here, but their shape is checked all the same. */
function parseClaims(payload: string): Claims | undefined {
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<Claims>;
    const { chatId, ownerId, expiresAt } = claims;
    return typeof chatId === 'string' && typeof ownerId === 'string' && typeof expiresAt === 'number' ? { chatId, ownerId, expiresAt } : undefined;
  } catch {
    return undefined;
  }
}
