import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Workspace packages export their TypeScript sources under the `source` condition, so tests
  // run the code as written, without a build (lab processes use `node --conditions=source`).
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  resolve: { conditions: ['source'] },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    setupFiles: ['test/setup/property-seed.ts'],
    // Kernel tests share the machine's netfilter modules; running files one at a time keeps
    // their timing independent of each other on a 2-core machine.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
