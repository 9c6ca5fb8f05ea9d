/** @jest-config-loader esbuild-register */
import type { Config } from 'jest';

const config: Config = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // Jest runs tests as CommonJS in a VM where a real `import()` needs an experimental flag;
    // compiling `import()` (used by the generated Prisma client) to `require` avoids it.
    '^.+\\.ts$': ['ts-jest', { tsconfig: { module: 'commonjs', moduleResolution: 'node10' } }],
    // jose is published as ES modules only, which Jest cannot load from CommonJS (Node can): its
    // files are compiled like ours.
    '/node_modules/jose/.+\\.js$': ['ts-jest', { tsconfig: { module: 'commonjs', moduleResolution: 'node10', allowJs: true } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  collectCoverageFrom: ['src/**/*.ts', '!src/store/generated/**', '!src/main.ts'],
  testTimeout: 20_000,
  // Says once per run whether the PostgreSQL tests can run (__tests__/support/postgres-database.ts).
  globalSetup: '<rootDir>/__tests__/support/global-setup.ts',
};

export default config;
