/**
 * Simulated agents for the server benchmark, in processes of their own (several, so their client
 * work neither shares the server's event loop nor queues behind one loop of its own). Each
 * process takes its slice of the fleet and answers the benchmark's commands over IPC: activate
 * its agents, each then long-polling its policy (reporting every policy it gets applied),
 * say when and what its agents received, send heartbeats, and make API calls for the benchmark.
 */
import type { PolicyReply, SetsReply } from '@palisade/protocol'
import {
  HeldSets,
  POLICY_STATUS,
  activateRoute,
  policyPollPath,
  setsRoute,
  statusRoute,
} from '@palisade/protocol'
import { client, inParallel, rate } from './https-client.js'

/** What the benchmark asks of a simulator process; each gets one answer. */
export type SimCommand =
  | { cmd: 'call'; method: string; path: string; body?: unknown }
  | { cmd: 'activate'; codes: { db: string; web: string; ops: string } }
  | { cmd: 'synced'; since: number; which: 'all' | 'ops' }
  | { cmd: 'received'; since: number }
  | { cmd: 'heartbeats'; seconds: number }
  | { cmd: 'apiRates'; seconds: number }

/** The fleet's agent `i` is a database host (1 %), an ops web host (1 %), or a web host. */
export const roleOf = (i: number) => (i % 100 === 0 ? 'db' : i % 100 === 1 ? 'ops' : 'web')

/** A time every process on the machine reads alike (ms): deliveries are compared across them. */
export const clock = () => performance.timeOrigin + performance.now()

const {
  url,
  ca,
  basic,
  agents: AGENTS,
  slice,
  slices,
} = JSON.parse(process.env.PALISADE_SIM ?? '{}') as {
  url: string
  ca: string
  basic: string
  agents: number
  slice: number
  slices: number
}

interface Agent {
  readonly i: number
  readonly id: string
  readonly auth: string
  hash: string
  /** The shared sets of its policy, fetched, checked and resolved as an agent does. */
  readonly held: HeldSets
  /**
   * Every policy it received: when (clock) its long-poll was answered, its sets fetched (as
   * `answered` when it needed none) and its status reported (`at`: synced), and the bytes of
   * its policy and sets replies.
   */
  readonly got: { answered: number; setsFetched: number; at: number; bytes: number }[]
}

const c = client(url, ca, basic)
const agents: Agent[] = []
/** Called whenever an agent receives a policy: `synced` waits on it. */
let onDelivery = () => {}

async function poll(a: Agent) {
  for (;;) {
    const r = await c
      .call('GET', policyPollPath(a.id, a.hash), undefined, a.auth)
      .catch((e: Error) => ({ status: 0, body: e.message }))
    if (r.status === POLICY_STATUS.unchanged) continue
    const answered = clock()
    const got = r.status === POLICY_STATUS.policy && (await take(a, r.body as PolicyReply))
    if (got === 'changed again') continue
    if (!got) {
      // what a real agent does too: wait a little before asking a failing server again
      await new Promise((done) => setTimeout(done, 1000))
      continue
    }
    const setsFetched = clock()
    const { version } = (r.body as PolicyReply).policy
    await c.call(
      'POST',
      statusRoute(a.id),
      { applied: { version, hash: a.hash, mode: 'exclusive' } },
      a.auth,
    )
    // synced: the agent has its policy and the server knows it applied it
    a.got.push({
      answered,
      setsFetched,
      at: clock(),
      bytes: Buffer.byteLength(JSON.stringify(r.body)) + got.setBytes,
    })
    onDelivery()
  }
}

/**
 * Takes a policy as an agent does: fetches the sets it names and the agent lacks (deltas from
 * those it holds), resolves it, and then has it. False when the sets request failed.
 */
async function take(
  a: Agent,
  reply: PolicyReply,
): Promise<{ setBytes: number } | 'changed again' | false> {
  const want = a.held.wanted(reply.policy)
  let setBytes = 0
  let sets: SetsReply['sets'] = []
  if (want.length > 0) {
    const r = await c
      .call('POST', setsRoute(a.id), { want }, a.auth)
      .catch((e: Error) => ({ status: 0, body: e.message }))
    if (r.status !== 200) return false
    const body = r.body as SetsReply
    if (body.gone.length > 0) return 'changed again'
    setBytes = Buffer.byteLength(JSON.stringify(body))
    sets = body.sets
  }
  a.held.resolve(reply.policy, sets)
  a.hash = reply.hash
  return { setBytes }
}

/** Calls that failed (no connection, or a 5xx) and were made again, as a real agent does. */
let retried = 0

/**
 * A call made until the server answers it (below 500), waiting a second between tries as a real
 * agent waits before asking a failing server again; a server that never answers in 60 tries
 * fails the benchmark.
 */
async function persist(
  ...[method, path, body, auth]: Parameters<typeof c.call>
): Promise<{ status: number; body: unknown }> {
  for (let tries = 1; ; tries++) {
    const r = await c
      .call(method, path, body, auth)
      .catch((e: Error) => ({ status: 0, body: e.message }))
    if (r.status > 0 && r.status < 500) return r
    if (tries === 60) throw new Error(`${method} ${path}: no answer in 60 tries: ${String(r.body)}`)
    retried++
    await new Promise((done) => setTimeout(done, 1000))
  }
}

const octet = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`

async function handle(m: SimCommand): Promise<unknown> {
  switch (m.cmd) {
    case 'call': {
      const sentAt = clock()
      const r = await c.call(m.method, m.path, m.body)
      return { ...r, sentAt, ms: clock() - sentAt }
    }
    case 'activate': {
      // this process's share of the fleet: agents slice, slice + slices, ...
      const mine = Array.from({ length: AGENTS }, (_, i) => i).filter((i) => i % slices === slice)
      // a fleet rollout: hosts activate concurrently (32 at a time across the processes)
      await inParallel(mine.length, Math.max(1, Math.round(32 / slices)), async (k) => {
        const i = mine[k]!
        const r = (
          await persist('POST', activateRoute(), {
            activation_code: m.codes[roleOf(i)],
            hostname: `sim${i}`,
            interfaces: [{ name: 'eth0', address: octet(i + 256) }],
          })
        ).body as { agent_id: string; token: string }
        agents.push({
          i,
          id: r.agent_id,
          auth: `Bearer ${r.token}`,
          hash: '',
          held: new HeldSets(),
          got: [],
        })
      })
      // each agent long-polls from its first policy on, as a real one does (not all at once);
      // many at a time, as a fleet's agents each ask for their own
      await inParallel(agents.length, 256, async (k) => {
        const a = agents[k]!
        while (!a.hash) {
          const r = await persist('GET', policyPollPath(a.id, undefined, 10), undefined, a.auth)
          if (r.status === POLICY_STATUS.policy && !(await take(a, r.body as PolicyReply)))
            retried++
        }
        void poll(a)
      })
      return { agents: agents.length, retried }
    }
    case 'synced': {
      // resolves once every agent asked for has received a policy since `since`
      const waitingFor = agents.filter((a) => m.which === 'all' || roleOf(a.i) === 'ops')
      const done = () => waitingFor.every((a) => a.got.some((g) => g.at >= m.since))
      while (!done()) await new Promise<void>((r) => (onDelivery = r))
      return waitingFor.length
    }
    case 'received': {
      const since = agents.flatMap((a) => a.got.filter((g) => g.at >= m.since))
      return {
        agents: agents.filter((a) => a.got.some((g) => g.at >= m.since)).length,
        answered: since.map((g) => g.answered),
        setsFetched: since.map((g) => g.setsFetched),
        at: since.map((g) => g.at),
        bytes: since.reduce((n, g) => n + g.bytes, 0),
      }
    }
    case 'heartbeats':
      // 16 loops across the processes, as one agent process had
      return rate(m.seconds, Math.max(1, Math.round(16 / slices)), async (i) => {
        const a = agents[i % agents.length]
        return (
          !!a &&
          (
            await c
              .call('POST', statusRoute(a.id), { health: { health: 'healthy' } }, a.auth)
              .catch(() => ({ status: 0 }))
          ).status === 204
        )
      })
    case 'apiRates':
      return apiRates(m.seconds)
  }
}

/** API reads and writes per second, each from 8 loops (labels: the commonest object). */
async function apiRates(seconds: number) {
  let k = 0
  const writes = await rate(seconds, 8, async () => {
    const label = { key: 'bench', value: `v${slice}-${k++}-${Math.random()}` }
    return (await c.call('POST', '/api/v2/orgs/1/labels', label)).status === 201
  })
  const reads = await rate(
    seconds,
    8,
    async () => (await c.call('GET', '/api/v2/orgs/1/labels?max_results=50')).status === 200,
  )
  return {
    readsPerSecond: reads.perSecond,
    writesPerSecond: writes.perSecond,
    failures: reads.failures + writes.failures,
  }
}

process.on('message', (m: SimCommand & { id: number }) => {
  handle(m).then(
    (value) => process.send?.({ id: m.id, value }),
    (e: Error) => process.send?.({ id: m.id, error: e.stack ?? e.message }),
  )
})
// the benchmark ends the process when it is done (long-polls may still be open)
process.on('disconnect', () => process.exit(0))
