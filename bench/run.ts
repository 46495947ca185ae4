/**
 * `npm run bench` runs every benchmark; `npm run bench -- NAME` runs one. Each prints one JSON
 * object of figures on its own line. With `--save`, each object is also written, with the
 * machine it ran on, to `bench/results/NAME.json`: the runs the docs quote.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { endOnSignals } from '@palisade/lab'

// Stopped by a signal (^C), a benchmark still deletes the namespaces it made.
endOnSignals()

const dir = fileURLToPath(new URL('.', import.meta.url))
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort()
const save = process.argv.includes('--save')
const wanted = process.argv.slice(2).filter((a) => a !== '--save')
const unknown = wanted.filter((w) => !all.includes(w))
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; there are: ${all.join(', ')}`)
  process.exit(2)
}
for (const name of wanted.length > 0 ? wanted : all) {
  const mod = (await import(`./${name}.bench.ts`)) as {
    run: () => Promise<Record<string, unknown>>
  }
  const started = performance.now()
  const figures = await mod.run()
  const result = {
    bench: name,
    ...figures,
    wallSeconds: +((performance.now() - started) / 1000).toFixed(1),
  }
  console.log(JSON.stringify(result))
  if (save) {
    mkdirSync(`${dir}results`, { recursive: true })
    writeFileSync(
      `${dir}results/${name}.json`,
      `${JSON.stringify({ ...result, machine: machine() }, null, 2)}\n`,
    )
  }
}

/** What a saved figure was measured on: a reader compares like with like. */
function machine(): Record<string, unknown> {
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: dir }).toString().trim()
    } catch {
      return undefined
    }
  }
  // Uncommitted changes (other than saved results) are part of what was measured: say so.
  const dirty = git('status', '--porcelain', '--', ':/', ':(top,exclude)bench/results')
  const commit = `${git('rev-parse', '--short', 'HEAD') ?? 'unknown'}${dirty ? '+changes' : ''}`
  return {
    date: new Date().toISOString(),
    commit,
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
  }
}
