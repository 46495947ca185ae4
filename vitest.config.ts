import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const pkg = (name: string) =>
  fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url))

export default defineConfig({
  resolve: {
    alias: {
      '@palisade/model': pkg('model'),
      '@palisade/firewall': pkg('firewall'),
      '@palisade/agent': pkg('agent'),
      '@palisade/lab': pkg('lab'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    // Kernel tests share the machine's netfilter modules; running files one at a time keeps
    // their timing independent of each other on a 2-core machine.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
