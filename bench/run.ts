/**
 * `npm run bench` runs every benchmark; `npm run bench -- NAME` runs one. Each prints one JSON
 * object of figures on its own line.
 */
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('.', import.meta.url))
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort()
const wanted = process.argv.slice(2)
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
  console.log(
    JSON.stringify({
      bench: name,
      ...figures,
      wallSeconds: +((performance.now() - started) / 1000).toFixed(1),
    }),
  )
}
