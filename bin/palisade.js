#!/usr/bin/env node
// The `palisade` command: runs the built CLI (`npm run build` makes it).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const main = fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url))
if (!existsSync(main)) {
  console.error('palisade is not built yet: run `npm ci && npm run build` in the repository first')
  process.exit(1)
}
await import(main)
