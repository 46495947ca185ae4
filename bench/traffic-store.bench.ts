/**
 * The server's traffic store, every process apart: the servers each in a process of their own,
 * the simulated agents in several others.
 *
 * - Ingest: agents post batches of 500 flow summaries as fast as the servers take them, for
 *   PALISADE_BENCH_SECONDS; two servers on one PostgreSQL, one server on SQLite. Summaries sent
 *   (answered 204) against rows stored afterwards: none may be lost.
 * - Query: PALISADE_BENCH_FLOW_ROWS summaries (10,000,000 on PostgreSQL, 1,000,000 on SQLite)
 *   over 10 days between 2,000 labelled workloads, each talking to 8 peers on 5 ports, written
 *   by SQL; then a traffic query with label filters through the API's async path (POST, GET
 *   until completed), timed from the POST.
 *
 * Every figure is the median of PALISADE_BENCH_RUNS runs, with their spread. The CPU each
 * summary cost the servers, the database and the clients is measured too: on a machine whose
 * cores they share, it says how many cores a rate would take where they do not.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runChecked, runLocal } from '@palisade/agent'
import { activateRoute } from '@palisade/protocol'
import BetterSqlite3 from 'better-sqlite3'
import pg from 'pg'
import { openDb } from '../packages/server/src/db/open.js'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'
import { ensureFlowPartitions } from '../packages/server/src/stores/flow-partitions.js'
import type { IngestWork } from './flow-ingest-client.js'
import type { Client } from './https-client.js'
import { inParallel } from './https-client.js'
import type { ServerProcess } from './server-process.js'
import { adminClient, benchProcess, startServerProcess } from './server-process.js'
import { cpuSeconds } from './rules-probe.js'
import { spread } from './stats.js'

const SECONDS = Number(process.env.PALISADE_BENCH_SECONDS ?? 10)
const RUNS = Number(process.env.PALISADE_BENCH_RUNS ?? 3)
const QUERY_RUNS = Number(process.env.PALISADE_BENCH_QUERY_RUNS ?? 5)
const PG_ROWS = Number(process.env.PALISADE_BENCH_FLOW_ROWS ?? 10_000_000)
const SQLITE_ROWS = Number(process.env.PALISADE_BENCH_SQLITE_FLOW_ROWS ?? 1_000_000)
const AGENTS = 200
const CLIENT_PROCESSES = 4
const WORKLOADS = 2000
const APPS = 20
const ENVS = ['prod', 'staging', 'dev'] as const
const DAYS = 10

/** A server in a process of its own on `database` (SQLite in `dataDir` when undefined). */
const startServer = (database: string | undefined, dataDir: string) =>
  startServerProcess({
    dataDir,
    ...(database && { database }),
    // retention is not what is measured: the benchmark's rows stay
    flowRetention: { maxAgeDays: 3650, maxRows: 1e12 },
  })

async function activate(
  c: Client,
  n: number,
): Promise<{ id: string; token: string; address: string }[]> {
  const profile = (await c.call('POST', '/api/v2/orgs/1/pairing_profiles', { name: 'flows' }))
    .body as {
    href: string
  }
  const code = (
    (await c.call('POST', `/api/v2${profile.href}/pairing_key`, {})).body as {
      activation_code: string
    }
  ).activation_code
  const out: { id: string; token: string; address: string }[] = []
  await inParallel(n, 8, async (i) => {
    const address = `198.18.${100 + (i >> 8)}.${i & 255}`
    const r = await c.call('POST', activateRoute(), {
      activation_code: code,
      hostname: `flows-${i}`,
      interfaces: [{ name: 'eth0', address }],
    })
    if (r.status !== 201)
      throw new Error(`activation ${i} answered ${r.status}: ${JSON.stringify(r.body)}`)
    const b = r.body as { agent_id: string; token: string }
    out.push({ id: b.agent_id, token: b.token, address })
  })
  return out
}

async function storedFlows(database: string | undefined, dataDir: string): Promise<number> {
  const { db } = await openDb(database, dataDir)
  try {
    const { n } = await db
      .selectFrom('flow_summaries')
      .select((e) => e.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    return Number(n)
  } finally {
    await db.destroy()
  }
}

/** Where the CPU goes: the server processes, the database's (none for SQLite), the clients'. */
interface CpuMeter {
  /** CPU seconds the database's processes used so far, ended backends included. */
  database(): Promise<number>
  readonly hz: number
}

/**
 * A PostgreSQL's CPU seconds so far: the postmaster's own, its ended children's and each live
 * backend's (see cpuSeconds).
 */
async function postgresCpu(postmaster: number, hz: number): Promise<number> {
  const { own, tools } = await cpuSeconds(postmaster, hz)
  return own + tools
}

/** One ingest run on a fresh store: `servers` servers, the agents spread over them. */
async function ingestRun(fresh: () => Promise<string | undefined>, servers: number, cpu: CpuMeter) {
  const database = await fresh()
  const dirs = await Promise.all(
    Array.from({ length: servers }, () => mkdtemp(join(tmpdir(), 'palisade-bench-ingest-'))),
  )
  const running: ServerProcess[] = []
  try {
    // one at a time: the first makes the schema and the org
    for (const d of dirs) running.push(await startServer(database, d))
    const agents = await activate(await adminClient(running[0] as ServerProcess), AGENTS)
    const serverCpu = async () =>
      (await Promise.all(running.map((s) => cpuSeconds(s.pid, cpu.hz)))).reduce(
        (a, c) => a + c.own,
        0,
      )
    const before = { servers: await serverCpu(), database: await cpu.database() }
    const results = await Promise.all(
      Array.from({ length: CLIENT_PROCESSES }, async (_, p) => {
        const work: IngestWork = {
          servers: running.map((s) => ({ url: s.url, ca: s.ca })),
          agents: agents
            .filter((_a, i) => i % CLIENT_PROCESSES === p)
            .map((a, i) => ({ ...a, server: i % servers })),
          seconds: SECONDS,
          batch: 500,
        }
        const { child, line } = benchProcess('./flow-ingest-client.ts', {
          PALISADE_INGEST: JSON.stringify(work),
        })
        const r = (await line) as {
          sent: number
          failedBatches: number
          failures: Record<string, unknown>
          seconds: number
          cpuSeconds: number
        }
        await new Promise((res) => (child.exitCode === null ? child.once('exit', res) : res(null)))
        return r
      }),
    )
    const used = {
      servers: (await serverCpu()) - before.servers,
      database: (await cpu.database()) - before.database,
      clients: results.reduce((a, r) => a + r.cpuSeconds, 0),
    }
    for (const s of running.splice(0)) await s.stop()
    const sent = results.reduce((a, r) => a + r.sent, 0)
    const seconds = Math.max(...results.map((r) => r.seconds))
    const stored = await storedFlows(database, dirs[0] as string)
    return {
      perSecond: Math.round(sent / seconds),
      sent,
      stored,
      lost: sent - stored,
      failedBatches: results.reduce((a, r) => a + r.failedBatches, 0),
      failures: results.map((r) => r.failures).filter((f) => Object.keys(f).length > 0),
      /** CPU microseconds per summary sent (answered 204), by where they were spent. */
      cpuUsPerSummary: {
        servers: (used.servers * 1e6) / sent,
        database: (used.database * 1e6) / sent,
        clients: (used.clients * 1e6) / sent,
      },
    }
  } finally {
    for (const s of running) await s.stop()
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  }
}

async function ingest(fresh: () => Promise<string | undefined>, servers: number, cpu: CpuMeter) {
  const runs: Awaited<ReturnType<typeof ingestRun>>[] = []
  for (let i = 0; i < RUNS; i++) runs.push(await ingestRun(fresh, servers, cpu))
  const us = (k: 'servers' | 'database' | 'clients') =>
    spread(runs.map((r) => +r.cpuUsPerSummary[k].toFixed(1)))
  const store = runs.map((r) => r.cpuUsPerSummary.servers + r.cpuUsPerSummary.database)
  return {
    servers,
    agents: AGENTS,
    clientProcesses: CLIENT_PROCESSES,
    seconds: SECONDS,
    summariesPerSecond: spread(runs.map((r) => r.perSecond)),
    sent: runs.reduce((a, r) => a + r.sent, 0),
    lost: runs.reduce((a, r) => a + r.lost, 0),
    failedBatches: runs.reduce((a, r) => a + r.failedBatches, 0),
    failures: runs.flatMap((r) => r.failures),
    cpuUsPerSummary: { servers: us('servers'), database: us('database'), clients: us('clients') },
    /**
     * Cores the servers and the database would keep busy at 20,000 summaries a second, from the
     * CPU they spent here (the clients, which share this machine, left out).
     */
    coresFor20kPerSecond: spread(store.map((u) => +((u * 20_000) / 1e6).toFixed(2))),
  }
}

/** 2,000 unmanaged workloads, each labelled with one of 20 apps and one of 3 environments. */
async function labelledWorkloads(
  c: Client,
): Promise<{ app: string[]; env: Record<string, string> }> {
  const label = async (key: string, value: string) =>
    ((await c.call('POST', '/api/v2/orgs/1/labels', { key, value })).body as { href: string }).href
  const app: string[] = []
  for (let a = 0; a < APPS; a++) app.push(await label('app', `app-${a}`))
  const env: Record<string, string> = {}
  for (const e of ENVS) env[e] = await label('env', e)
  for (let from = 0; from < WORKLOADS; from += 1000) {
    const items = Array.from({ length: 1000 }, (_, k) => {
      const i = from + k
      return {
        name: `w${i}`,
        hostname: `w${i}`,
        interfaces: [{ name: 'eth0', address: workloadAddress(i) }],
        labels: [
          { href: app[i % APPS] },
          { href: env[ENVS[Math.floor(i / APPS) % ENVS.length] as string] },
        ],
      }
    })
    const r = await c.call('PUT', '/api/v2/orgs/1/workloads/bulk_create', items)
    if (r.status !== 200) throw new Error(`bulk_create answered ${r.status}`)
  }
  return { app, env }
}

const workloadAddress = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`

/**
 * The flows of summary g: its source a workload by a hash of g, its destination one of the
 * source's 8 peers, the port the destination's; its time within the last 10 days. As SQL,
 * for either store (both have integer division and modulo on integers).
 */
const flowColumns =
  'uuid, org_id, workload_id, direction, src_ip, dst_ip, port, proto, policy_decision, num_connections, first_seen, last_seen, dropped_downstream'
const sourceOf = `((g * 7919) % ${WORKLOADS})`
const peerOf = `((${sourceOf} * 31 + ((g / ${WORKLOADS}) % 8) * 97 + 1) % ${WORKLOADS})`
const addressSql = (i: string, concat: (parts: string[]) => string) =>
  concat([`'198.18.'`, `(${i} / 250)`, `'.'`, `(${i} % 250 + 1)`])

async function fillPostgres(database: string, rows: number, end: number): Promise<number> {
  const c = new pg.Client({ connectionString: database })
  await c.connect()
  try {
    const t0 = performance.now()
    const span = DAYS * 86_400_000
    // the store makes its partitions as summaries arrive; rows written by SQL need them first
    const { db } = await openDb(database, tmpdir())
    try {
      const days = Array.from({ length: DAYS + 3 }, (_, i) =>
        new Date(end - span + (i - 1) * 86_400_000).toISOString().slice(0, 10),
      )
      await ensureFlowPartitions(db, days)
    } finally {
      await db.destroy()
    }
    const cat = (p: string[]) => p.map((x) => `(${x})::text`).join(' || ')
    const ts = (ms: string) =>
      `to_char(to_timestamp((${ms})::float8 / 1000) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
    const step = 1_000_000
    for (let from = 1; from <= rows; from += step) {
      const to = Math.min(rows, from + step - 1)
      const at = `(${end}::bigint - (g * 104729) % ${span})`
      await c.query(`insert into flow_summaries (${flowColumns})
        select 'bench-' || lpad(g::text, 10, '0'), 1, 'bench',
          case when g % 2 = 0 then 'inbound' else 'outbound' end,
          ${addressSql(sourceOf, cat)}, ${addressSql(peerOf, cat)},
          (array[22, 80, 443, 5432, 8080])[(${peerOf} % 5 + 1)::int], 6,
          case when g % 10 = 0 then 'blocked' else 'allowed' end, 1 + g % 7,
          ${ts(`${at} - 60000`)}, ${ts(at)}, 0
        from generate_series(${from}::bigint, ${to}::bigint) as g`)
    }
    await c.query('analyze flow_summaries')
    return Math.round(rows / ((performance.now() - t0) / 1000))
  } finally {
    await c.end()
  }
}

function fillSqlite(file: string, rows: number, end: number): number {
  const db = new BetterSqlite3(file)
  try {
    const t0 = performance.now()
    const span = DAYS * 86_400_000
    const cat = (p: string[]) => p.join(' || ')
    const ts = (ms: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', (${ms}) / 1000.0, 'unixepoch')`
    const at = `(${end} - (g * 104729) % ${span})`
    db.exec(`with recursive s(g) as (select 1 union all select g + 1 from s where g < ${rows})
      insert into flow_summaries (${flowColumns})
      select 'bench-' || g, 1, 'bench', case when g % 2 = 0 then 'inbound' else 'outbound' end,
        ${addressSql(sourceOf, cat)}, ${addressSql(peerOf, cat)},
        case ${peerOf} % 5 when 0 then 22 when 1 then 80 when 2 then 443 when 3 then 5432 else 8080 end, 6,
        case when g % 10 = 0 then 'blocked' else 'allowed' end, 1 + g % 7,
        ${ts(`${at} - 60000`)}, ${ts(at)}, 0
      from s`)
    db.exec('analyze')
    return Math.round(rows / ((performance.now() - t0) / 1000))
  } finally {
    db.close()
  }
}

/** From the POST to the query's completion, polling its status as a client does. */
async function timedQuery(c: Client, body: unknown) {
  const t0 = performance.now()
  const q = (await c.call('POST', '/api/v2/orgs/1/traffic_flows/async_queries', body)).body as {
    href: string
  }
  for (;;) {
    const s = (await c.call('GET', `/api/v2${q.href}`)).body as Record<string, unknown>
    if (s.status === 'completed' || s.status === 'failed')
      return {
        ms: Math.round(performance.now() - t0),
        status: String(s.status),
        matches: Number(s.matches_count),
      }
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function queryOver(database: string | undefined, rows: number) {
  const dataDir = await mkdtemp(join(tmpdir(), 'palisade-bench-flows-'))
  try {
    let s = await startServer(database, dataDir)
    const labels = await labelledWorkloads(await adminClient(s))
    await s.stop()
    const end = Date.now() - 3_600_000
    const loadPerSecond = database
      ? await fillPostgres(database, rows, end)
      : fillSqlite(join(dataDir, 'palisade.db'), rows, end)
    s = await startServer(database, dataDir)
    try {
      const c = await adminClient(s)
      // one app's workloads (1 in 20) to production ones (1 in 3), over the 30 days
      const body = {
        start_date: new Date(end - 30 * 86_400_000).toISOString(),
        end_date: new Date(end + 1000).toISOString(),
        sources: { include: [[{ label: { href: labels.app[3] } }]], exclude: [] },
        destinations: { include: [[{ label: { href: labels.env.prod } }]], exclude: [] },
        max_results: 10_000,
      }
      const runs = []
      for (let i = 0; i < QUERY_RUNS; i++) runs.push(await timedQuery(c, body))
      return {
        rows,
        loadPerSecond,
        labelQueryMs: spread(runs.map((r) => r.ms)),
        statuses: [...new Set(runs.map((r) => r.status))],
        matches: runs[0]?.matches,
      }
    } finally {
      await s.stop()
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const pgServer = await startTestPostgres()
  try {
    const fresh = () => pgServer.freshDatabase()
    const hz = Number((await runChecked(runLocal, 'getconf', ['CLK_TCK'])).trim())
    const postmaster = await pgServer.postmasterPid()
    return {
      ingest: {
        postgres: await ingest(fresh, 2, { hz, database: () => postgresCpu(postmaster, hz) }),
        sqlite: await ingest(() => Promise.resolve(undefined), 1, {
          hz,
          database: () => Promise.resolve(0),
        }),
      },
      query: {
        postgres: await queryOver(await fresh(), PG_ROWS),
        sqlite: await queryOver(undefined, SQLITE_ROWS),
      },
    }
  } finally {
    await pgServer.stop()
  }
}
