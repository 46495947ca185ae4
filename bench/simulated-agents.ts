/**
 * Simulated agents for the server benchmark, in a process of their own: they activate,
 * long-poll their policy, report it applied after a provision, then send heartbeats.
 */
import { activateRoute, policyPollPath, statusRoute } from '@palisade/protocol'
import { client, inParallel, rate } from './https-client.js'
import { summary } from './stats.js'

const {
  url,
  ca,
  basic,
  agents: AGENTS,
  seconds: SECONDS,
} = JSON.parse(process.env.PALISADE_SIM ?? '{}') as {
  url: string
  ca: string
  basic: string
  agents: number
  seconds: number
}

const t0 = performance.now()
/** Progress on stderr: a run with many agents takes minutes, and this says where they go. */
const progress = (what: string) =>
  console.error(`simulated agents: ${what} at ${Math.round((performance.now() - t0) / 1000)} s`)

async function simulate(): Promise<Record<string, unknown>> {
  const c = client(url, ca, basic)

  // 1 % database hosts serving 99 % web hosts: each db host's policy lists every web host.
  const label = async (value: string) =>
    (
      (await c.call('POST', '/api/v2/orgs/1/labels', { key: 'role', value })).body as {
        href: string
      }
    ).href
  const web = await label('sim-web')
  const db = await label('sim-db')
  const codeFor = async (l: string, name: string) => {
    const p = (
      await c.call('POST', '/api/v2/orgs/1/pairing_profiles', {
        name,
        enforcement_mode: 'full',
        labels: [{ href: l }],
      })
    ).body as { href: string }
    return (
      (await c.call('POST', `/api/v2${p.href}/pairing_key`, {})).body as {
        activation_code: string
      }
    ).activation_code
  }
  const codes = { web: await codeFor(web, 'sim-web'), db: await codeFor(db, 'sim-db') }
  const agents: { id: string; auth: string; hash: string }[] = []
  const octet = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
  // A fleet rollout: hosts activate concurrently (32 at a time), each with its role's code.
  const activationStarted = performance.now()
  await inParallel(AGENTS, 32, async (i) => {
    const r = (
      await c.call('POST', activateRoute(), {
        activation_code: i % 100 === 0 ? codes.db : codes.web,
        hostname: `sim${i}`,
        interfaces: [{ name: 'eth0', address: octet(i + 256) }],
      })
    ).body as { agent_id: string; token: string }
    agents.push({ id: r.agent_id, auth: `Bearer ${r.token}`, hash: '' })
    if (agents.length % 1000 === 0) progress(`${agents.length} activated`)
  })
  const activationsPerSecond = Math.round(AGENTS / ((performance.now() - activationStarted) / 1000))
  for (const a of agents)
    a.hash = (
      (await c.call('GET', policyPollPath(a.id, undefined, 10), undefined, a.auth)).body as {
        hash: string
      }
    ).hash
  progress('every agent has its first policy')
  // every agent waits for its next policy, then reports it applied
  let provisionedAt = 0
  const latencies: number[] = []
  const waiting = agents.map(async (a) => {
    const r = await c.call('GET', policyPollPath(a.id, a.hash), undefined, a.auth)
    if (r.status !== 200) return
    const got = r.body as { hash: string; policy: { version: number } }
    await c.call(
      'POST',
      statusRoute(a.id),
      { applied: { version: got.policy.version, hash: got.hash, mode: 'exclusive' } },
      a.auth,
    )
    latencies.push(performance.now() - provisionedAt)
  })
  // Provision once every agent's long-poll has reached the server (bounded: 120 s).
  const connectedBy = performance.now() + 120_000
  for (;;) {
    const m = String((await c.call('GET', '/metrics')).body)
    if (Number(/^palisade_policy_waiters (\d+)$/m.exec(m)?.[1]) >= AGENTS) break
    if (performance.now() > connectedBy) throw new Error('the long-polls did not all connect')
    await new Promise((r) => setTimeout(r, 200))
  }
  progress('every agent is waiting for its next policy')
  const rs = (
    await c.call('POST', '/api/v2/orgs/1/sec_policy/draft/rule_sets', { name: 'sim', scopes: [] })
  ).body as { href: string }
  await c.call('POST', `/api/v2${rs.href}/sec_rules`, {
    providers: [{ label: { href: db } }],
    consumers: [{ label: { href: web } }],
    ingress_services: [{ port: 5432, proto: 6 }],
  })
  provisionedAt = performance.now()
  const prov = await c.call('POST', '/api/v2/orgs/1/sec_policy', {})
  const provisionMs = performance.now() - provisionedAt
  await Promise.all(waiting)
  const hb = await rate(SECONDS, 16, async (i) => {
    const a = agents[i % agents.length]
    return (
      !!a &&
      (await c.call('POST', statusRoute(a.id), { health: { health: 'healthy' } }, a.auth))
        .status === 204
    )
  })
  return {
    activationsPerSecond,
    provisionStatus: prov.status,
    provisionCallMs: Math.round(provisionMs),
    agentsSynced: latencies.length,
    provisionToSyncedMs: summary(latencies),
    heartbeatsPerSecond: hb.perSecond,
    heartbeatFailures: hb.failures,
  }
}

console.log(JSON.stringify(await simulate()))
