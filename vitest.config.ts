import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Workspace packages export their TypeScript sources under the `source` condition, so tests
  // run the code as written, without a build (lab processes use `node --conditions=source`).
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  resolve: { conditions: ['source'] },
  test: {
    setupFiles: ['test/setup/property-seed.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          // Unit tests share nothing between files (each server test starts its own PostgreSQL
          // in a temporary directory, on a unix socket there), so files run side by side, one
          // worker per core (vitest's default leaves one core idle: a single worker on 2 cores).
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts'],
          maxWorkers: '100%',
        },
      },
      {
        extends: true,
        test: {
          // Kernel and console tests share the machine's netfilter modules; running files one at
          // a time keeps their timing independent of each other on a 2-core machine. Vitest runs
          // this project's files after the unit tests have finished.
          name: 'kernel',
          include: ['test/**/*.test.ts'],
          fileParallelism: false,
        },
      },
    ],
  },
})
