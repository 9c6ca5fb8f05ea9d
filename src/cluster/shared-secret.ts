import { randomBytes } from 'node:crypto';
import { coordinationUnavailable } from './coordination-unavailable';
import type { RedisConnection } from './redis-connection';

/**
 * The random secret stored in Redis under `key`, made by whichever instance asks first: every
 * instance and worker of a deployment gets the same one (SET NX, then GET), with no setting to
 * distribute. It has no expiry. `known`, the secret this instance has been using, is what it
 * offers: after a Redis that lost its data (no persistence) comes back, the first instance to ask
 * puts the deployment's secret back rather than a new one, and its tokens stay good everywhere.
 * @throws AppError service_unavailable when Redis cannot be reached.
 */
export async function sharedSecret(connection: RedisConnection, key: string, known?: Buffer): Promise<Buffer> {
  try {
    await connection.command(['SET', key, (known ?? randomBytes(32)).toString('base64url'), 'NX']);
    const secret = await connection.command<string | null>(['GET', key]);
    // Deleted between the two commands: the next request asks again.
    if (!secret) throw new Error(`the Redis key ${key} disappeared as it was read`);
    return Buffer.from(secret, 'base64url');
  } catch (error) {
    throw coordinationUnavailable(error);
  }
}
