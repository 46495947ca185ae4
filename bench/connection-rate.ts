/**
 * New-connection rates that measure the firewall, not the client: one client process runs out
 * of CPU long before the kernel does, so the load comes from several processes, each with
 * several connections in flight, and the benchmark shows that adding clients no longer helps.
 */
import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import type { LabHost } from '@palisade/lab'
import { Lab, LabPeer, resetFirewall } from '@palisade/lab'
import { spread } from './stats.js'

export interface Load {
  /** Client processes in the client namespace. */
  readonly processes: number
  /** Connections each keeps in flight. */
  readonly parallel: number
}

/** From one connection at a time to more clients than the machine has cores. */
export const LOADS: readonly Load[] = [
  { processes: 1, parallel: 1 },
  { processes: 1, parallel: 4 },
  { processes: 1, parallel: 16 },
  { processes: 2, parallel: 16 },
  { processes: 4, parallel: 16 },
]

/** Client processes started once in a namespace, driven together. */
export class ClientPool {
  readonly #peers: LabPeer[]

  private constructor(peers: LabPeer[]) {
    this.#peers = peers
  }

  static start(ns: string, processes: number): ClientPool {
    return new ClientPool(Array.from({ length: processes }, () => LabPeer.start(ns)))
  }

  /** Connections per second to host:port made by the first `load.processes` clients at once. */
  async rate(host: string, port: number, seconds: number, load: Load): Promise<RateSample> {
    const used = this.#peers.slice(0, load.processes)
    if (used.length < load.processes)
      throw new Error(`the pool has ${this.#peers.length} clients; ${load.processes} asked for`)
    const runs = await Promise.all(
      used.map((p) => p.connectionRate(host, port, seconds, load.parallel)),
    )
    const connections = runs.reduce((n, r) => n + r.connections, 0)
    return {
      perSecond: runs.reduce((n, r) => n + r.perSecond, 0),
      connections,
      failures: runs.reduce((n, r) => n + r.failures, 0),
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.#peers.map((p) => p.stop()))
  }
}

export interface RateSample {
  readonly perSecond: number
  readonly connections: number
  readonly failures: number
}

/** `2x16`: two processes with 16 connections each in flight. */
export const loadLabel = (l: Load) => `${l.processes}x${l.parallel}`

/**
 * The rate at each load, over `runs` interleaved rounds (median and spread), and the load the
 * benchmark then uses: the lightest whose median is within 5 % of the best, i.e. where more
 * clients stop adding connections and the server side limits the rate.
 */
export async function clientScaling(
  pool: ClientPool,
  host: string,
  port: number,
  seconds: number,
  runs: number,
): Promise<{ table: Record<string, ReturnType<typeof spread>>; chosen: Load }> {
  const samples = new Map<Load, number[]>(LOADS.map((l) => [l, []]))
  for (let r = 0; r < runs; r++)
    for (const l of LOADS) samples.get(l)?.push((await pool.rate(host, port, seconds, l)).perSecond)
  const table: Record<string, ReturnType<typeof spread>> = {}
  for (const [l, s] of samples) table[loadLabel(l)] = rateSpread(s)
  const best = Math.max(...Object.values(table).map((t) => t.median))
  const chosen = LOADS.find((l) => (table[loadLabel(l)]?.median ?? 0) >= 0.95 * best) ?? LOADS[0]
  if (!chosen) throw new Error('no client loads to measure')
  return { table, chosen }
}

/** A spread of rates, rounded for printing. */
export function rateSpread(values: readonly number[]): ReturnType<typeof spread> {
  const s = spread(values)
  return {
    median: Math.round(s.median),
    min: Math.round(s.min),
    max: Math.round(s.max),
    runs: s.runs,
  }
}

/** A spread of ratios, to three places. */
export function ratioSpread(values: readonly number[]): ReturnType<typeof spread> {
  const s = spread(values)
  const r = (x: number) => +x.toFixed(3)
  return { median: r(s.median), min: r(s.min), max: r(s.max), runs: s.runs }
}

/** The lab a rate benchmark measures in, its clients scaled to the load it uses. */
export interface RateLab {
  readonly server: LabHost
  readonly client: LabHost
  /**
   * New connections to the server's port at the chosen load (the lightest at which more
   * clients no longer raise the no-rules rate), returning once every connection made has
   * finished closing.
   */
  readonly rate: () => Promise<RateSample>
}

/**
 * Runs `measure` in a fresh client and server namespace pair, the server listening on `port`,
 * after finding the client load with no rules (`noRulesByClients` and `load` in the result);
 * everything made is removed afterwards, also when `measure` fails.
 */
export async function inRateLab(
  port: number,
  seconds: number,
  rounds: number,
  measure: (l: RateLab) => Promise<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  const lab = await Lab.create(['client', 'server'])
  const client = lab.host('client')
  const server = lab.host('server')
  const clients = ClientPool.start(client.ns, Math.max(...LOADS.map((l) => l.processes)))
  const listener = LabPeer.start(server.ns)
  try {
    await listener.listen([port], [])
    await resetFirewall(server.run)
    const scaling = await clientScaling(clients, server.ip4, port, seconds, rounds)
    const rate = async () => {
      const r = await clients.rate(server.ip4, port, seconds, scaling.chosen)
      await closed(server.run, port)
      return r
    }
    const measured = await measure({ server, client, rate })
    return { noRulesByClients: scaling.table, load: loadLabel(scaling.chosen), ...measured }
  } finally {
    await clients.stop()
    await listener.stop()
    await lab.destroy()
  }
}

/**
 * Waits (up to 10 s) until no connection to `port` is open or closing on the server. A round's
 * last packets (the client's final ACKs) still arrive after its clients return; a reset between
 * rounds flushes conntrack, after which conntrack would pick those packets up mid-stream as new
 * connections, and they would pass through the next round's rules.
 */
async function closed(run: Runner, port: number): Promise<void> {
  const until = performance.now() + 10_000
  let open = ''
  while (performance.now() < until) {
    open = await runChecked(run, 'ss', ['-Htan', 'state', 'connected', `sport = :${port}`])
    if (open.trim() === '') return
    await new Promise((r) => setTimeout(r, 50))
  }
  const states = new Map<string, number>()
  for (const l of open.trim().split('\n')) {
    const state = l.split(/\s+/)[0] ?? '?'
    states.set(state, (states.get(state) ?? 0) + 1)
  }
  throw new Error(
    `connections to port ${port} still open or closing 10 s after a round: ${[...states].map(([k, n]) => `${n} ${k}`).join(', ')}`,
  )
}
