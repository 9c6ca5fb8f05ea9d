export type TestEngine = 'sqlite' | 'postgresql';

const ENGINES: readonly TestEngine[] = ['sqlite', 'postgresql'];

/** The engine a test service starts on when the test names none: TEST_ENGINE, else SQLite. */
export function defaultEngine(): TestEngine {
  return engineFromEnvironment() ?? 'sqlite';
}

function engineFromEnvironment(): TestEngine | undefined {
  const named = process.env.TEST_ENGINE?.trim();
  if (!named) return undefined;
  if (!(ENGINES as readonly string[]).includes(named)) throw new Error(`TEST_ENGINE must be one of ${ENGINES.join(', ')}, not ${named}`);
  return named as TestEngine;
}
