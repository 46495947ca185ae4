/**
 * Policy-server figures, on loopback over TLS, against servers on a real store (SQLite, then
 * PostgreSQL): API reads and writes per second, and for N simulated agents (each long-polls its
 * policy and reports the applied hash) activations per second, provision-to-synced latency for
 * the first provision (every host's policy changes: a full push) and for a one-rule change that
 * reaches 1 % of the hosts (with the bytes each sends to agents), heartbeats per second
 * sustained with zero loss, and the server CPU a heartbeat costs. Every figure is the median of
 * several runs, each on fresh servers, with the spread. Every party runs in a process of its
 * own: the servers, the API client and the agents (several processes); this process only
 * relays the benchmark's steps. On PostgreSQL, PALISADE_BENCH_SERVERS servers form a cluster
 * (one CA, LISTEN/NOTIFY): the agents are spread over them and the API talks to the first.
 */
import type { ChildProcess } from 'node:child_process'
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runChecked, runLocal } from '@palisade/agent'
import { cpuSeconds, rssKb } from './rules-probe.js'
import type { ServerProcess } from './server-process.js'
import { adminAuth, startServerProcess } from './server-process.js'
import type { SimCommand } from './simulated-agents.js'
import { spread, summary } from './stats.js'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'

const AGENTS = Number(process.env.PALISADE_BENCH_AGENTS ?? 1000)
const SECONDS = Number(process.env.PALISADE_BENCH_SECONDS ?? 5)
const RUNS = Number(process.env.PALISADE_BENCH_RUNS ?? 3)
const PROCESSES = Number(process.env.PALISADE_BENCH_SIM_PROCESSES ?? 4)
const PG_SERVERS = Number(process.env.PALISADE_BENCH_SERVERS ?? 1)
/** Which stores to measure: a fleet of 25,000 is PostgreSQL's (SQLite is for one server). */
const STORES = (process.env.PALISADE_BENCH_STORES ?? 'sqlite,postgres').split(',')
/** The vendor's heartbeat interval: what a fleet's heartbeats cost the servers is at this rate. */
const HEARTBEAT_INTERVAL_S = 300

export async function run(): Promise<Record<string, unknown>> {
  if (PROCESSES < PG_SERVERS)
    throw new Error(`${PG_SERVERS} servers need at least as many simulator processes`)
  const out: Record<string, unknown> = {
    agents: AGENTS,
    seconds: SECONDS,
    simulatorProcesses: PROCESSES,
    postgresServers: PG_SERVERS,
  }
  const runs = async (database: () => Promise<string | undefined>, servers: number) => {
    const api: Record<string, unknown>[] = []
    const fleet: Record<string, unknown>[] = []
    for (let r = 0; r < RUNS; r++) {
      api.push(await withServers(await database(), 1, apiRun))
      fleet.push(await withServers(await database(), servers, fleetRun))
    }
    return { api: medians(api), simulatedAgents: medians(fleet) }
  }
  if (STORES.includes('sqlite')) out.sqlite = await runs(() => Promise.resolve(undefined), 1)
  if (!STORES.includes('postgres')) return out
  const pg = await startTestPostgres()
  try {
    out.postgres = await runs(() => pg.freshDatabase(), PG_SERVERS)
  } finally {
    await pg.stop()
  }
  return out
}

/**
 * `count` servers on `database` (one on SQLite in its data dir when undefined), sharing a
 * cluster secret when more than one; `f` gets them and the administrator's Authorization header.
 */
async function withServers<T>(
  database: string | undefined,
  count: number,
  f: (servers: readonly ServerProcess[], basic: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-'))
  const servers: ServerProcess[] = []
  try {
    const secret = join(dir, 'cluster.secret')
    if (count > 1) await writeFile(secret, randomBytes(32).toString('hex'), { mode: 0o600 })
    for (let i = 0; i < count; i++) {
      const dataDir = join(dir, `server${i}`)
      servers.push(
        await startServerProcess({
          dataDir,
          ...(database && { database }),
          ...(count > 1 && { clusterSecretFile: secret }),
        }),
      )
    }
    return await f(servers, await adminAuth(servers[0]!))
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    await rm(dir, { recursive: true, force: true })
  }
}

/** The simulator processes: each holds a slice of the fleet and answers commands in turn. */
class Simulators {
  readonly #children: ChildProcess[]
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >()
  #next = 0

  /** Simulator `k` talks to server `k % servers.length`. */
  constructor(servers: readonly ServerProcess[], basic: string, processes: number) {
    const script = fileURLToPath(new URL('./simulated-agents.ts', import.meta.url))
    this.#children = Array.from({ length: processes }, (_, slice) => {
      const { url, ca } = servers[slice % servers.length]!
      const sim = { url, ca, basic, agents: AGENTS, slice, slices: processes }
      const child = fork(script, [], {
        execArgv: ['--conditions=source', '--import', 'tsx'],
        env: { ...process.env, PALISADE_SIM: JSON.stringify(sim) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      child.on('message', (m: { id: number; value?: unknown; error?: string }) => {
        const p = this.#pending.get(m.id)
        this.#pending.delete(m.id)
        if (m.error !== undefined) p?.reject(new Error(`a simulator failed: ${m.error}`))
        else p?.resolve(m.value)
      })
      child.on('exit', (code) => {
        if (code !== 0)
          for (const p of this.#pending.values())
            p.reject(new Error(`a simulator process exited with code ${code}`))
      })
      return child
    })
  }

  ask<T>(k: number, m: SimCommand): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.#children[k]!.send({ ...m, id })
    })
  }

  all<T>(m: SimCommand): Promise<T[]> {
    return Promise.all(this.#children.map((_, k) => this.ask<T>(k, m)))
  }

  /**
   * An API call, made from simulator `via` (to its server; the first by default); `sentAt` and
   * `ms` on the shared clock.
   */
  call(method: string, path: string, body?: unknown, via = 0) {
    return this.ask<{ status: number; body: unknown; sentAt: number; ms: number }>(via, {
      cmd: 'call',
      method,
      path,
      body,
    })
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#children.map(
        (c) =>
          new Promise<void>((done) => {
            if (c.exitCode !== null) return done()
            c.once('exit', () => done())
            c.disconnect()
          }),
      ),
    )
  }
}

async function apiRun(servers: readonly ServerProcess[], basic: string) {
  const sims = new Simulators(servers, basic, 1)
  try {
    return await sims.ask<Record<string, unknown>>(0, { cmd: 'apiRates', seconds: SECONDS })
  } finally {
    await sims.stop()
  }
}

async function fleetRun(
  servers: readonly ServerProcess[],
  basic: string,
): Promise<Record<string, unknown>> {
  const sims = new Simulators(servers, basic, PROCESSES)
  try {
    const api = sims.call.bind(sims)
    const href = (r: { body: unknown }) => (r.body as { href: string }).href
    const label = async (key: string, value: string) =>
      href(await api('POST', '/api/v2/orgs/1/labels', { key, value }))
    // 1 % database hosts serving 99 % web hosts (each db host's policy lists every web host);
    // 1 % of the hosts are web hosts of the ops app too, which the second provision reaches
    const web = await label('role', 'sim-web')
    const db = await label('role', 'sim-db')
    const ops = await label('app', 'sim-ops')
    const codeFor = async (labels: string[], name: string) => {
      const p = await api('POST', '/api/v2/orgs/1/pairing_profiles', {
        name,
        enforcement_mode: 'full',
        labels: labels.map((l) => ({ href: l })),
      })
      const key = await api('POST', `/api/v2${href(p)}/pairing_key`, {})
      return (key.body as { activation_code: string }).activation_code
    }
    const codes = {
      web: await codeFor([web], 'sim-web'),
      db: await codeFor([db], 'sim-db'),
      ops: await codeFor([web, ops], 'sim-ops'),
    }
    const activationStarted = performance.now()
    const activated = await sims.all<{ agents: number; retried: number }>({
      cmd: 'activate',
      codes,
    })
    const activationSeconds = (performance.now() - activationStarted) / 1000

    const hz = Number((await runChecked(runLocal, 'getconf', ['CLK_TCK'])).trim())
    const cpu = async () => {
      const each = await Promise.all(servers.map((s) => cpuSeconds(s.pid, hz)))
      return each.reduce((n, c) => n + c.own, 0)
    }
    /** Provisions after `change`, once every agent waits; what the agents got, and when. */
    const provision = async (change: () => Promise<unknown>, which: 'all' | 'ops') => {
      await everyAgentWaiting(sims, servers.length)
      await change()
      const cpuBefore = await cpu()
      const prov = await api('POST', '/api/v2/orgs/1/sec_policy', {})
      const since = prov.sentAt
      const expected = (await sims.all<number>({ cmd: 'synced', since, which })).reduce(
        (a, b) => a + b,
      )
      const serverCpuMs = Math.round(((await cpu()) - cpuBefore) * 1000)
      // a host the change does not reach must get nothing: wait a second for any straggler
      if (which !== 'all') await new Promise((r) => setTimeout(r, 1000))
      const got = await sims.all<{
        agents: number
        answered: number[]
        setsFetched: number[]
        at: number[]
        bytes: number
      }>({ cmd: 'received', since })
      const after = (k: 'answered' | 'setsFetched' | 'at') =>
        summary(got.flatMap((g) => g[k].map((t) => t - since)))
      return {
        provisionStatus: prov.status,
        provisionCallMs: Math.round(prov.ms),
        agentsExpected: expected,
        agentsSynced: got.reduce((n, g) => n + g.agents, 0),
        provisionToSyncedMs: after('at'),
        // the servers' CPU from the provision call to the last agent synced (on a machine of
        // few cores the agents' processes take the rest: this is what the servers can improve)
        serverCpuMs,
        // where that time goes, each from the provision call's start: the agents' long-polls
        // answered, their sets fetched (when answered, for those that needed none), and their
        // status reported (synced, as above)
        phasesMs: { answered: after('answered'), setsFetched: after('setsFetched') },
        bytesToAgents: got.reduce((n, g) => n + g.bytes, 0),
      }
    }
    const rs = href(
      await api('POST', '/api/v2/orgs/1/sec_policy/draft/rule_sets', { name: 'sim', scopes: [] }),
    )
    const rule = (providers: string, consumers: string, port: number) => () =>
      api('POST', `/api/v2${rs}/sec_rules`, {
        providers: [{ label: { href: providers } }],
        consumers: [{ label: { href: consumers } }],
        ingress_services: [{ port, proto: 6 }],
      })
    const fullPush = await provision(rule(db, web, 5432), 'all')
    const oneRule = await provision(rule(ops, ops, 22), 'ops')
    const cpuBefore = await cpu()
    const hb = await sims.all<{ perSecond: number; failures: number; count: number }>({
      cmd: 'heartbeats',
      seconds: SECONDS,
    })
    const heartbeats = hb.reduce((n, h) => n + h.count, 0)
    const heartbeatCpuMs = ((await cpu()) - cpuBefore) * 1000
    const rss = await Promise.all(servers.map((s) => rssKb(s.pid)))
    return {
      activationsPerSecond: Math.round(AGENTS / activationSeconds),
      // activations and first policy fetches the servers did not answer (no connection, 5xx),
      // made again a second later
      activationCallsRetried: activated.reduce((n, a) => n + a.retried, 0),
      fullPush,
      oneRuleChange: {
        ...oneRule,
        bytesPercentOfFullPush: +((100 * oneRule.bytesToAgents) / fullPush.bytesToAgents).toFixed(
          3,
        ),
      },
      heartbeatsPerSecond: hb.reduce((n, h) => n + h.perSecond, 0),
      heartbeatFailures: hb.reduce((n, h) => n + h.failures, 0),
      // the servers' CPU per heartbeat, and so the share of one core the fleet's heartbeats
      // take at the vendor's interval (all servers together)
      heartbeatCpuMsEach: +(heartbeatCpuMs / heartbeats).toFixed(3),
      heartbeatCorePercentAt5Min: +(
        (100 * (AGENTS / HEARTBEAT_INTERVAL_S) * heartbeatCpuMs) /
        heartbeats /
        1000
      ).toFixed(2),
      // the largest server's, now and at its peak
      serverRssMiB: Math.round(Math.max(...rss.map((r) => r.rss)) / 1024),
      serverPeakRssMiB: Math.round(Math.max(...rss.map((r) => r.peak)) / 1024),
    }
  } finally {
    await sims.stop()
  }
}

/** Waits (up to 120 s) until every agent's long-poll has reached its server. */
async function everyAgentWaiting(sims: Simulators, servers: number) {
  const by = performance.now() + 120_000
  // simulator k talks to server k % servers: the first `servers` simulators reach each once
  const waiters = async (via: number) => {
    const m = String((await sims.call('GET', '/metrics', undefined, via)).body)
    return Number(/^palisade_policy_waiters (\d+)$/m.exec(m)?.[1])
  }
  for (;;) {
    const each = await Promise.all(Array.from({ length: servers }, (_, k) => waiters(k)))
    if (each.reduce((a, b) => a + b, 0) >= AGENTS) return
    if (performance.now() > by) throw new Error('the long-polls did not all connect')
    await new Promise((r) => setTimeout(r, 200))
  }
}

/**
 * Several runs' figures as one: each number becomes its median with the spread, each nested
 * figure the same, and anything else (a status) is taken from the first run.
 */
function medians(runs: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(runs[0] ?? {})) {
    const all = runs.map((r) => r[k])
    if (typeof v === 'number') out[k] = spread(all as number[])
    else if (v !== null && typeof v === 'object') out[k] = medians(all as Record<string, unknown>[])
    else out[k] = v
  }
  return out
}
