import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // The CLI and cluster tests run the built dist/cli.js: build it once per run, so no test depends on an earlier build.
    globalSetup: ['test/helpers/build.ts'],
    // Tests bind real sockets on 127.0.0.1; two forks keep the 2-core budget honest.
    pool: 'forks',
    maxWorkers: 2,
    // Chaos tests force a collection before comparing memory with its baseline.
    execArgv: ['--expose-gc'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
