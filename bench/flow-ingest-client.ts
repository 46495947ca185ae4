/**
 * Simulated agents uploading flow summaries, in a process of their own (a client sharing the
 * server's event loop would flatter it): each agent posts batches of 500 to its server, one at a
 * time, for the given seconds. Prints one JSON line: summaries sent (answered 204) and failed
 * batches, by status. Its work comes as JSON in PALISADE_INGEST.
 */
import { randomUUID } from 'node:crypto'
import { flowsRoute } from '@palisade/protocol'
import { client } from './https-client.js'

export interface IngestWork {
  readonly servers: readonly { readonly url: string; readonly ca: string }[]
  /** Each agent, the server it posts to (an index into `servers`) and its address. */
  readonly agents: readonly {
    readonly id: string
    readonly token: string
    readonly address: string
    readonly server: number
  }[]
  readonly seconds: number
  readonly batch: number
}

const work = JSON.parse(process.env.PALISADE_INGEST ?? '{}') as IngestWork
const clients = work.servers.map((s) => client(s.url, s.ca, ''))

/** One agent's summaries: its peers and services repeat, as a host's traffic does. */
const batchOf = (address: string, n: number, t: number) =>
  Array.from({ length: work.batch }, (_, k) => {
    const i = n + k
    return {
      uuid: randomUUID(),
      direction: i % 2 === 0 ? 'inbound' : 'outbound',
      src_ip: i % 2 === 0 ? `198.19.${(i >> 4) & 63}.${i & 15}` : address,
      dst_ip: i % 2 === 0 ? address : `198.19.${(i >> 4) & 63}.${i & 15}`,
      port: [22, 80, 443, 5432, 8080][i % 5],
      proto: 6,
      policy_decision: i % 10 === 0 ? 'blocked' : 'allowed',
      rule_href: null,
      num_connections: 1 + (i % 7),
      first_seen: new Date(t - 60_000).toISOString(),
      last_seen: new Date(t).toISOString(),
      dropped_downstream: false,
    }
  })

let sent = 0
let failedBatches = 0
/** Why batches failed: each status answered, and the first answer's body. */
const failures: Record<string, { count: number; first: unknown }> = {}
const t0 = performance.now()
// the CPU of the uploads only: not the process's start (tsx compiles this file first)
const cpu0 = process.cpuUsage()
const end = t0 + work.seconds * 1000
await Promise.all(
  work.agents.map(async (a) => {
    const c = clients[a.server]
    if (!c) throw new Error(`agent ${a.id} names server ${a.server}, which is not given`)
    let n = 0
    while (performance.now() < end) {
      const batch = batchOf(a.address, n, Date.now())
      n += batch.length
      const r = await c.call('POST', flowsRoute(a.id), batch, `Bearer ${a.token}`)
      if (r.status === 204) sent += batch.length
      else {
        failedBatches++
        const f = (failures[r.status] ??= { count: 0, first: r.body })
        f.count++
      }
    }
  }),
)
const seconds = (performance.now() - t0) / 1000
const { user, system } = process.cpuUsage(cpu0)
const cpuSeconds = (user + system) / 1e6
console.log(JSON.stringify({ sent, failedBatches, failures, seconds, cpuSeconds }))
