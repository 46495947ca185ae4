/**
 * One policy server in a process of its own, for benchmarks that run several on one store: it
 * prints one JSON line (its URL, CA and bootstrap file) once it listens, and closes on SIGTERM.
 * Options come as JSON in PALISADE_SERVER.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ServerOptions } from '@palisade/server'
import { startServer } from '@palisade/server'

const o = JSON.parse(process.env.PALISADE_SERVER ?? '{}') as Partial<ServerOptions> & {
  dataDir: string
}
const server = await startServer({
  listen: '127.0.0.1:0',
  tls: 'auto',
  ratePerMinute: 1e12,
  activationsPerMinute: 1e12,
  ...o,
})
// Each server's own CA, in its data dir (the servers share no cluster secret here).
console.log(
  JSON.stringify({
    url: server.url,
    ca: await readFile(join(o.dataDir, 'ca.crt'), 'utf8'),
    bootstrapFile: server.bootstrapFile,
  }),
)
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)))
