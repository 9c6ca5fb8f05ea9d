import { postgresUnreachable } from './postgres-database';

export type TestEngine = 'sqlite' | 'postgresql';

const ENGINES: readonly TestEngine[] = ['sqlite', 'postgresql'];

/** The engine of the describeEachEngine block whose tests are running. */
let running: TestEngine | undefined;

/**
 * The engine a test service starts on when the test names none: that of the enclosing
 * describeEachEngine block, else TEST_ENGINE, else SQLite.
 */
export function defaultEngine(): TestEngine {
  return running ?? engineFromEnvironment() ?? 'sqlite';
}

/**
 * Declares the tests of `body` once per engine, in blocks titled `sqlite` and `postgresql`; the
 * test services they start use that block's engine. TEST_ENGINE=sqlite or =postgresql keeps one
 * block. Where no PostgreSQL answers, its block is skipped as describePostgres skips its tests.
 */
export function describeEachEngine(body: (engine: TestEngine) => void): void {
  const environment = engineFromEnvironment();
  for (const engine of environment ? [environment] : ENGINES) {
    const skipped = engine === 'postgresql' && postgresUnreachable() !== undefined;
    (skipped ? describe.skip : describe)(engine, () => {
      beforeAll(() => {
        running = engine;
      });
      afterAll(() => {
        running = undefined;
      });
      body(engine);
    });
  }
}

function engineFromEnvironment(): TestEngine | undefined {
  const named = process.env.TEST_ENGINE?.trim();
  if (!named) return undefined;
  if (!(ENGINES as readonly string[]).includes(named)) throw new Error(`TEST_ENGINE must be one of ${ENGINES.join(', ')}, not ${named}`);
  return named as TestEngine;
}
