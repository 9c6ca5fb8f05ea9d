import { checkPostgresOnce } from './postgres-database';
import { checkRedisOnce } from './redis-server';

/** Runs once before every test file, in jest's own process; workers inherit the environment it sets. */
export default function globalSetup(): void {
  checkPostgresOnce();
  checkRedisOnce();
}
