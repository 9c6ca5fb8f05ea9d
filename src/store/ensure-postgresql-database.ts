import { Client } from 'pg';

/** PostgreSQL's code for "no such database". */
const INVALID_CATALOG_NAME = '3D000';
/**
 * "That database already exists": 42P04 when it existed before this CREATE DATABASE began, or a
 * unique violation on the catalog (23505) when another session created it at the same moment.
 */
const ALREADY_EXISTS = new Set(['42P04', '23505']);

/**
 * Creates the database `connectionString` names when the server says it does not exist, as
 * Prisma's own `migrate deploy` does: a first start on a new server needs no `createdb` by hand.
 * It connects to the server's `postgres` database with the same credentials to do it; of
 * several instances starting at once, one creates it and the others find it there.
 * @returns true when the database was created now.
 * @throws pg's error when the server cannot be reached or the user may not create databases.
 */
export async function ensurePostgresqlDatabase(connectionString: string, connectTimeoutMs: number): Promise<boolean> {
  const probe = new Client({ connectionString, connectionTimeoutMillis: connectTimeoutMs });
  try {
    await probe.connect();
    return false;
  } catch (error) {
    if ((error as { code?: unknown }).code !== INVALID_CATALOG_NAME) throw error;
  } finally {
    await probe.end().catch(() => undefined);
  }
  const url = new URL(connectionString);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.href, connectionTimeoutMillis: connectTimeoutMs });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    return true;
  } catch (error) {
    if (ALREADY_EXISTS.has((error as { code?: string }).code ?? '')) return false;
    throw error;
  } finally {
    await admin.end().catch(() => undefined);
  }
}
