/**
 * Exclusions end to end on the real kernel: a policy server and three hosts whose real agents
 * each program another backend (nftables, iptables-nft, iptables-legacy). Rules written the
 * vendor's way, "all workloads except role: X" (an excluded label), admit every other host and
 * refuse X; a rule set whose scope excludes one host's role leaves that host out on both
 * sides. Every host both admits and refuses someone, over IPv4 and IPv6.
 */
import type { LabAgent, LabHost, ProbeOutcome } from '@palisade/lab'
import { Lab, LabAgent as Agent, LabPeer, LabServer, waitFor } from '@palisade/lab'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

type Json = Record<string, unknown>

/** "all workloads except role: db" reaches everyone here. */
const EXCEPT_DB = 7101
/** "all workloads except role: web" reaches everyone here. */
const EXCEPT_WEB = 7102
/** Only inside the rule set scoped to "every role except app". */
const SCOPED = 7103
const HOSTS = { web: 'nftables', app: 'iptables-nft', db: 'iptables-legacy' } as const
type Role = keyof typeof HOSTS
const ROLES = Object.keys(HOSTS) as Role[]

describe('exclusions on the real kernel: every backend, IPv4 and IPv6', () => {
  let lab: Lab
  let server: LabServer
  const agents: Partial<Record<Role, LabAgent>> = {}
  const peers: Partial<Record<Role, LabPeer>> = {}
  const href: Record<string, string> = {}
  const host = (r: Role): LabHost => lab.host(r)

  const api = async (method: string, path: string, body: unknown, want: number) =>
    server.apiOk(method, path, body, want)

  /** What `from` sees connecting to `to` on `port`, over IPv4 and over IPv6. */
  const reach = async (from: Role, to: Role, port: number): Promise<ProbeOutcome[]> => {
    const peer = peers[from]
    if (!peer) throw new Error(`no peer on ${from}`)
    return peer.probe([
      { proto: 'tcp', host: host(to).ip4, port },
      { proto: 'tcp', host: host(to).ip6, port },
    ])
  }

  beforeAll(async () => {
    lab = await Lab.create(['srv', ...ROLES])
    server = await LabServer.start(lab.host('srv').ns, lab.host('srv').ip4)
    for (const [k, v] of [['env', 'prod'], ...ROLES.map((r) => ['role', r])] as const)
      href[v] = String((await api('POST', '/api/v2/orgs/1/labels', { key: k, value: v }, 201)).href)
    const cfg = { heartbeatMs: 1000, confirmMs: 15_000, surveyMs: 2000 }
    for (const r of ROLES) {
      const code = await server.activationCode(r, [href[r] ?? '', href.prod ?? ''])
      agents[r] = await Agent.pair(host(r).ns, HOSTS[r], server, code, cfg)
      peers[r] = LabPeer.start(host(r).ns)
      await peers[r]?.listen([EXCEPT_DB, EXCEPT_WEB, SCOPED], [])
    }
  }, 120_000)

  afterAll(async () => {
    for (const a of Object.values(agents)) await a.cleanup()
    for (const p of Object.values(peers)) await p.stop()
    await server?.cleanup()
    await lab?.destroy()
  })

  it('admits all but the excluded role, and leaves a scope-excluded host out', async () => {
    const started = performance.now()
    // the agents report IPv6 addresses, so the peers of every rule carry both families
    await waitFor(
      'every workload to report its IPv6 address',
      async () => {
        const list = (await api('GET', '/api/v2/orgs/1/workloads', undefined, 200)) as unknown as {
          interfaces: { address: string }[]
        }[]
        return list.length === 3 &&
          ROLES.every((r) => list.some((w) => w.interfaces.some((i) => i.address === host(r).ip6)))
          ? true
          : undefined
      },
      20_000,
      250,
    )
    const everywhere = await api(
      'POST',
      '/api/v2/orgs/1/sec_policy/draft/rule_sets',
      { name: 'all but', scopes: [[{ label: { href: href.prod } }]] },
      201,
    )
    const except = (role: string) => [{ label: { href: href[role] }, exclusion: true }]
    for (const [role, port] of [
      ['db', EXCEPT_DB],
      ['web', EXCEPT_WEB],
    ] as const)
      await api(
        'POST',
        `/api/v2${String(everywhere.href)}/sec_rules`,
        {
          providers: [{ actors: 'ams' }],
          consumers: except(role),
          ingress_services: [{ proto: 6, port }],
        },
        201,
      )
    const scoped = await api(
      'POST',
      '/api/v2/orgs/1/sec_policy/draft/rule_sets',
      { name: 'not app', scopes: [[{ label: { href: href.app }, exclusion: true }]] },
      201,
    )
    const rs = (await api('GET', `/api/v2${String(scoped.href)}`, undefined, 200)) as {
      scopes: unknown
    }
    expect(rs.scopes, 'the scope exclusion is stored as written').toEqual([
      [{ label: { href: href.app }, exclusion: true }],
    ])
    await api(
      'POST',
      `/api/v2${String(scoped.href)}/sec_rules`,
      {
        providers: [{ actors: 'ams' }],
        consumers: [{ actors: 'ams' }],
        ingress_services: [{ proto: 6, port: SCOPED }],
      },
      201,
    )
    const v = await api('POST', '/api/v2/orgs/1/sec_policy', { update_description: 'x' }, 201)
    await waitFor(
      'every agent to apply the provisioned policy',
      async () => {
        const list = (await api(
          'GET',
          '/api/v2/orgs/1/workloads?managed=true',
          undefined,
          200,
        )) as unknown as { agent: { status: Json } }[]
        return list.length === 3 &&
          list.every(
            (w) =>
              w.agent.status.security_policy_sync_state === 'synced' &&
              w.agent.status.security_policy_applied_version === v.version,
          )
          ? true
          : undefined
      },
      30_000,
      250,
    )
    const open = ['open', 'open']
    const refused = ['timeout', 'timeout']
    const seen: Record<string, ProbeOutcome[]> = {}
    const expected: Record<string, string[]> = {}
    for (const from of ROLES)
      for (const to of ROLES) {
        if (from === to) continue
        // every host provides; the consumers are all but db, then all but web
        expected[`${from}>${to}:except-db`] = from === 'db' ? refused : open
        expected[`${from}>${to}:except-web`] = from === 'web' ? refused : open
        // the scope holds web and db only: app neither reaches nor is reached
        expected[`${from}>${to}:scoped`] = from === 'app' || to === 'app' ? refused : open
        seen[`${from}>${to}:except-db`] = await reach(from, to, EXCEPT_DB)
        seen[`${from}>${to}:except-web`] = await reach(from, to, EXCEPT_WEB)
        seen[`${from}>${to}:scoped`] = await reach(from, to, SCOPED)
      }
    expect(seen).toEqual(expected)
    console.log(
      `exclusions: provision, sync and ${Object.keys(seen).length * 2} probes in ${Math.round(performance.now() - started)} ms`,
    )
  })
})
