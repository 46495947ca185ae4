/**
 * Policy-server figures, on loopback over TLS, against a server on a real store (SQLite, then
 * PostgreSQL): API reads and writes per second, and for N simulated agents (each long-polls its
 * policy and reports the applied hash) activations per second, provision-to-synced latency for
 * the first provision (every host's policy changes: a full push) and for a one-rule change that
 * reaches 1 % of the hosts (with the bytes each sends to agents), and heartbeats per second
 * sustained with zero loss. Every figure is the median of several runs, each on a fresh server,
 * with the spread. The API client and the agents run in processes of their own (several), not
 * in the server's: this process hosts the server and only relays the benchmark's steps.
 */
import type { ChildProcess } from 'node:child_process'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { withServer } from './https-client.js'
import type { SimCommand } from './simulated-agents.js'
import { spread, summary } from './stats.js'
import { startTestPostgres } from '../packages/server/src/postgres.fixture.js'

const AGENTS = Number(process.env.PALISADE_BENCH_AGENTS ?? 1000)
const SECONDS = Number(process.env.PALISADE_BENCH_SECONDS ?? 5)
const RUNS = Number(process.env.PALISADE_BENCH_RUNS ?? 3)
const PROCESSES = Number(process.env.PALISADE_BENCH_SIM_PROCESSES ?? 4)

export async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {
    agents: AGENTS,
    seconds: SECONDS,
    simulatorProcesses: PROCESSES,
  }
  const runs = async (database: () => Promise<string | undefined>) => {
    const api: Record<string, unknown>[] = []
    const fleet: Record<string, unknown>[] = []
    for (let r = 0; r < RUNS; r++) {
      api.push(await withServer(await database(), (_c, url, ca, basic) => apiRun(url, ca, basic)))
      fleet.push(
        await withServer(await database(), (_c, url, ca, basic) => fleetRun(url, ca, basic)),
      )
    }
    return { api: medians(api), simulatedAgents: medians(fleet) }
  }
  out.sqlite = await runs(() => Promise.resolve(undefined))
  const pg = await startTestPostgres()
  try {
    out.postgres = await runs(() => pg.freshDatabase())
  } finally {
    await pg.stop()
  }
  return out
}

/** The simulator processes: each holds a slice of the fleet and answers commands in turn. */
class Simulators {
  readonly #children: ChildProcess[]
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >()
  #next = 0

  constructor(url: string, ca: string, basic: string, processes: number) {
    const script = fileURLToPath(new URL('./simulated-agents.ts', import.meta.url))
    this.#children = Array.from({ length: processes }, (_, slice) => {
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

  /** An API call, made from the first simulator; `sentAt` and `ms` on the shared clock. */
  call(method: string, path: string, body?: unknown) {
    return this.ask<{ status: number; body: unknown; sentAt: number; ms: number }>(0, {
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

async function apiRun(url: string, ca: string, basic: string) {
  const sims = new Simulators(url, ca, basic, 1)
  try {
    return await sims.ask<Record<string, unknown>>(0, { cmd: 'apiRates', seconds: SECONDS })
  } finally {
    await sims.stop()
  }
}

async function fleetRun(url: string, ca: string, basic: string): Promise<Record<string, unknown>> {
  const sims = new Simulators(url, ca, basic, PROCESSES)
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
    await sims.all({ cmd: 'activate', codes })
    const activationSeconds = (performance.now() - activationStarted) / 1000
    await sims.all({ cmd: 'poll' })

    /** Provisions after `change`, once every agent waits; what the agents got, and when. */
    const provision = async (change: () => Promise<unknown>, which: 'all' | 'ops') => {
      await everyAgentWaiting(api)
      await change()
      const prov = await api('POST', '/api/v2/orgs/1/sec_policy', {})
      const since = prov.sentAt
      const expected = (await sims.all<number>({ cmd: 'synced', since, which })).reduce(
        (a, b) => a + b,
      )
      // a host the change does not reach must get nothing: wait a second for any straggler
      if (which !== 'all') await new Promise((r) => setTimeout(r, 1000))
      const got = await sims.all<{ agents: number; at: number[]; bytes: number }>({
        cmd: 'received',
        since,
      })
      return {
        provisionStatus: prov.status,
        provisionCallMs: Math.round(prov.ms),
        agentsExpected: expected,
        agentsSynced: got.reduce((n, g) => n + g.agents, 0),
        provisionToSyncedMs: summary(got.flatMap((g) => g.at.map((t) => t - since))),
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
    const hb = await sims.all<{ perSecond: number; failures: number }>({
      cmd: 'heartbeats',
      seconds: SECONDS,
    })
    return {
      activationsPerSecond: Math.round(AGENTS / activationSeconds),
      fullPush,
      oneRuleChange: {
        ...oneRule,
        bytesPercentOfFullPush: +((100 * oneRule.bytesToAgents) / fullPush.bytesToAgents).toFixed(
          3,
        ),
      },
      heartbeatsPerSecond: hb.reduce((n, h) => n + h.perSecond, 0),
      heartbeatFailures: hb.reduce((n, h) => n + h.failures, 0),
      serverRssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    }
  } finally {
    await sims.stop()
  }
}

/** Waits (up to 120 s) until every agent's long-poll has reached the server. */
async function everyAgentWaiting(api: Simulators['call']) {
  const by = performance.now() + 120_000
  for (;;) {
    const m = String((await api('GET', '/metrics')).body)
    if (Number(/^palisade_policy_waiters (\d+)$/m.exec(m)?.[1]) >= AGENTS) return
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
