/**
 * The server's traffic store: flow summaries ingested per second over the agent channel with
 * zero loss (every summary sent is stored once), and one traffic query over 1,000,000 stored
 * summaries (time from POST to completed), on SQLite and PostgreSQL.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDb } from '../packages/server/src/db/open.js'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'
import type { FlowSummary } from '@palisade/model'
import { activateRoute, flowsRoute } from '@palisade/protocol'
import { ingestFlows } from '../packages/server/src/stores/flows.js'
import type { Client } from './https-client.js'
import { withServer } from './https-client.js'

const INGEST_SECONDS = Number(process.env.PALISADE_BENCH_SECONDS ?? 5)
const QUERY_ROWS = Number(process.env.PALISADE_BENCH_FLOW_ROWS ?? 1_000_000)

const summaryFor = (i: number, t: number): FlowSummary => ({
  direction: 'inbound',
  src_ip: `198.18.${(i >> 8) & 255}.${i & 255}`,
  dst_ip: '198.19.0.1',
  port: 1000 + (i % 50),
  proto: 6,
  policy_decision: i % 10 === 0 ? 'blocked' : 'allowed',
  rule_href: null,
  num_connections: 1 + (i % 7),
  first_seen: new Date(t).toISOString(),
  last_seen: new Date(t + 1000).toISOString(),
  dropped_downstream: false,
})

/** Simulated agents post batches of 500 summaries as fast as the server takes them. */
async function ingestRate(c: Client): Promise<Record<string, unknown>> {
  const profile = (await c.call('POST', '/api/v2/orgs/1/pairing_profiles', { name: 'bench' }))
    .body as { href: string }
  const code = (
    (await c.call('POST', `/api/v2${profile.href}/pairing_key`, {})).body as {
      activation_code: string
    }
  ).activation_code
  const agents: { id: string; auth: string }[] = []
  for (let i = 0; i < 8; i++) {
    const r = (
      await c.call('POST', activateRoute(), {
        activation_code: code,
        hostname: `flow${i}`,
        interfaces: [{ name: 'eth0', address: `198.19.0.${i + 1}` }],
      })
    ).body as { agent_id: string; token: string }
    agents.push({ id: r.agent_id, auth: `Bearer ${r.token}` })
  }
  let sent = 0
  let failures = 0
  const t0 = performance.now()
  const end = t0 + INGEST_SECONDS * 1000
  await Promise.all(
    agents.map(async (a) => {
      while (performance.now() < end) {
        const batch = Array.from({ length: 500 }, (_, k) => ({
          uuid: randomUUID(),
          ...summaryFor(sent + k, Date.now()),
        }))
        const r = await c.call('POST', flowsRoute(a.id), batch, a.auth)
        if (r.status === 204) sent += batch.length
        else failures++
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  return { summariesPerSecond: Math.round(sent / seconds), sent, failedBatches: failures }
}

/** The ingest rate, and the rows the store holds afterwards: zero loss means one per summary sent. */
async function ingest(database: string | undefined): Promise<Record<string, unknown>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'palisade-bench-ingest-'))
  try {
    const r = await withServer(database, ingestRate, { dataDir })
    const { db } = await openDb(database, dataDir)
    const { n } = await db
      .selectFrom('flow_summaries')
      .select((e) => e.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    await db.destroy()
    return { ...r, stored: Number(n), lost: Number(r.sent) - Number(n) }
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

async function query(
  c: Client,
  body: unknown,
): Promise<{ ms: number; status: Record<string, unknown> }> {
  const t0 = performance.now()
  const q = (await c.call('POST', '/api/v2/orgs/1/traffic_flows/async_queries', body)).body as {
    href: string
  }
  for (;;) {
    const s = (await c.call('GET', `/api/v2${q.href}`)).body as Record<string, unknown>
    if (s.status === 'completed' || s.status === 'failed')
      return { ms: Math.round(performance.now() - t0), status: s }
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function queryOverMillion(database: string | undefined): Promise<Record<string, unknown>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'palisade-bench-flows-'))
  try {
    const { db } = await openDb(database, dataDir)
    const t = Date.now() - 3_600_000
    const t0 = performance.now()
    for (let i = 0; i < QUERY_ROWS; i += 5000) {
      const rows = Array.from({ length: Math.min(5000, QUERY_ROWS - i) }, (_, k) => ({
        uuid: randomUUID(),
        ...summaryFor(i + k, t + (i + k)),
      }))
      await db.transaction().execute((tx) => ingestFlows(tx, 1, 'bench', rows))
    }
    const loadSeconds = (performance.now() - t0) / 1000
    await db.destroy()
    return await withServer(
      database,
      async (c) => {
        const all = await query(c, {
          start_date: new Date(t - 1000).toISOString(),
          max_results: 1000,
        })
        const blockedTo = await query(c, {
          start_date: new Date(t - 1000).toISOString(),
          policy_decisions: ['blocked'],
          destinations: { include: [[{ ip_address: '198.19.0.1' }]], exclude: [] },
          services: { include: [{ port: 1000, proto: 6 }] },
          max_results: 1000,
        })
        return {
          rows: QUERY_ROWS,
          loadPerSecond: Math.round(QUERY_ROWS / loadSeconds),
          allFlows: { ms: all.ms, status: all.status.status, matches: all.status.matches_count },
          blockedToOnePort: {
            ms: blockedTo.ms,
            status: blockedTo.status.status,
            matches: blockedTo.status.matches_count,
          },
        }
      },
      { dataDir },
    )
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const pg = await startTestPostgres()
  try {
    return {
      ingest: { sqlite: await ingest(undefined), postgres: await ingest(await pg.freshDatabase()) },
      query: {
        sqlite: await queryOverMillion(undefined),
        postgres: await queryOverMillion(await pg.freshDatabase()),
      },
    }
  } finally {
    await pg.stop()
  }
}
