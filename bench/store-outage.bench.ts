/**
 * A PostgreSQL restart under two servers (real servers over TLS on one private PostgreSQL):
 * each server takes a label write every 50 ms; the database is stopped as a crash would stop it
 * (`pg_ctl stop -m immediate`), kept away 3 s, and started. Figures: how long after the stop the
 * first 503 came, how long after the restart the first write was acknowledged again, statuses
 * seen, and how many acknowledged writes are missing afterwards (must be 0).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'
import type { Client } from './https-client.js'
import { withServer } from './https-client.js'

const AWAY_MS = 3000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function run(): Promise<Record<string, unknown>> {
  const pg = await startTestPostgres()
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-'))
  try {
    const url = await pg.freshDatabase()
    // One data dir: the second server finds the first's CA and bootstrap file there.
    const dataDir = { dataDir: dir }
    return await withServer(
      url,
      (a) => withServer(url, (b) => outage(pg, [a, b]), dataDir),
      dataDir,
    )
  } finally {
    await pg.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

async function outage(
  pg: Awaited<ReturnType<typeof startTestPostgres>>,
  clients: Client[],
): Promise<Record<string, unknown>> {
  const acknowledged: string[] = []
  const statuses = new Map<number, number>()
  let haltedAt = Infinity
  let resumedAt = Infinity
  let first503 = Infinity
  let firstAfter = Infinity
  let writing = true
  let n = 0
  const writer = async (c: Client) => {
    while (writing) {
      const value = `o${n++}`
      const r = await c.call('POST', '/api/v2/orgs/1/labels', { key: 'role', value })
      const t = performance.now()
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      if (r.status === 201) {
        acknowledged.push(value)
        if (t > resumedAt) firstAfter = Math.min(firstAfter, t)
      }
      if (r.status === 503 && t > haltedAt) first503 = Math.min(first503, t)
      await sleep(50)
    }
  }
  const writers = clients.map(writer)
  await sleep(1000)
  haltedAt = performance.now()
  await pg.halt()
  await sleep(AWAY_MS)
  await pg.resume()
  resumedAt = performance.now()
  while (firstAfter === Infinity && performance.now() - resumedAt < 30_000) await sleep(50)
  await sleep(1000)
  writing = false
  await Promise.all(writers)
  const present = new Set<string>()
  for (const c of clients) {
    const r = await c.call('GET', '/api/v2/orgs/1/labels?key=role&max_results=100000')
    for (const l of r.body as { value: string }[]) present.add(l.value)
  }
  return {
    msTo503: Math.round(first503 - haltedAt),
    msToRecoverAfterRestart: Math.round(firstAfter - resumedAt),
    statuses: Object.fromEntries(statuses),
    acknowledgedWrites: acknowledged.length,
    writesLost: acknowledged.filter((v) => !present.has(v)).length,
  }
}
