/**
 * IPv6 works wherever IPv4 does: for every backend x mode in full enforcement, with the
 * neighbour caches emptied first (so discovery must pass our chains), an allowed connection
 * passes over both families, one the policy does not allow is refused over both, the
 * neighbour entries resolve, and the DHCP client ports of both families stay reachable. The
 * packet-path model, run on the live read-back, predicts each outcome.
 */
import type { Runner } from '@palisade/agent'
import { applyDesired, readHost, runChecked } from '@palisade/agent'
import type { Backend, Packet, Ruleset } from '@palisade/firewall'
import { BACKENDS, compile, tracePacket } from '@palisade/firewall'
import type { LabHost, ProbeTarget } from '@palisade/lab'
import { Lab, LabPeer, resetFirewall } from '@palisade/lab'
import type { CoexistenceMode, HostPolicy } from '@palisade/model'
import { DEFAULT_FAILSAFE } from '@palisade/model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ALLOWED = 21000
const BLOCKED = 21001
const MODES: readonly CoexistenceMode[] = [
  'exclusive',
  'coexistence_primary',
  'coexistence_non_primary',
]

function policy(client: LabHost, mode: CoexistenceMode): HostPolicy {
  return {
    version: 1,
    workload: { href: '/w/server', name: 'server' },
    enforcementMode: 'full',
    visibilityLevel: 'flow_off',
    mode: { mode, applied: true, reason: { kind: 'no_match' } },
    rejectBlocked: false,
    loopbackInPolicy: false,
    rules: [
      {
        key: '/v6/allow#in',
        ruleHref: '/v6/allow',
        action: 'allow',
        direction: 'inbound',
        peers: { v4: [`${client.ip4}/32`], v6: [`${client.ip6}/128`] },
        services: [{ proto: 6, port: ALLOWED }],
      },
    ],
  }
}

/** The state of `ip`'s neighbour entry on `host` (REACHABLE, STALE, INCOMPLETE...), or none. */
async function neighbour(run: Runner, ip: string): Promise<string> {
  const out = await runChecked(run, 'ip', ['neigh', 'show', 'to', ip, 'dev', 'eth0'])
  return out.trim().split(/\s+/).pop() ?? 'none'
}

/** Whether the model, from the live read-back, lets the request in and its reply out. */
function predicted(rs: Ruleset, t: ProbeTarget, client: LabHost, server: LabHost): boolean {
  const family = t.host.includes(':') ? 6 : 4
  const [c, s] = family === 6 ? [client.ip6, server.ip6] : [client.ip4, server.ip4]
  const proto = t.proto === 'tcp' ? 6 : 17
  const common = { family, proto, iif: 'eth0', oif: 'eth0' } as const
  const req: Packet = {
    ...common,
    path: 'in',
    src: c,
    dst: s,
    sport: 40000,
    dport: t.port,
    ct: 'new',
  }
  const rep: Packet = {
    ...common,
    path: 'out',
    src: s,
    dst: c,
    sport: t.port,
    dport: 40000,
    ct: 'established',
  }
  return tracePacket(rs, req).verdict === 'accept' && tracePacket(rs, rep).verdict === 'accept'
}

/** Neighbour discovery between the two, as the model sees it: untracked, both ways. */
function discoveryPredicted(rs: Ruleset, client: LabHost, server: LabHost): boolean {
  const nd = (path: 'in' | 'out', type: number): Packet => ({
    path,
    family: 6,
    src: path === 'in' ? client.ip6 : server.ip6,
    dst: path === 'in' ? server.ip6 : client.ip6,
    proto: 58,
    icmp: { type, code: 0 },
    iif: 'eth0',
    oif: 'eth0',
    ct: 'new',
  })
  return [nd('in', 135), nd('in', 136), nd('out', 135), nd('out', 136)].every(
    (p) => tracePacket(rs, p).verdict === 'accept',
  )
}

describe('IPv6 works wherever IPv4 does (full enforcement)', () => {
  let lab: Lab
  let client: LabPeer
  let server: LabPeer
  const table: string[] = []

  beforeAll(async () => {
    lab = await Lab.create(['client', 'server'])
    client = LabPeer.start(lab.host('client').ns)
    server = LabPeer.start(lab.host('server').ns)
    // 546 and 68: the DHCPv6 and DHCP client ports, which the failsafe keeps open
    await server.listen([ALLOWED, BLOCKED], [546, 68])
  })

  afterAll(async () => {
    await client?.stop()
    await server?.stop()
    await lab?.destroy()
    if (table.length > 0) console.log(['IPv6 cells (backend mode: outcomes)', ...table].join('\n'))
  })

  const cells = BACKENDS.flatMap((b) => MODES.map((m) => [b, m] as [Backend, CoexistenceMode]))
  it.each(cells)('%s, %s', async (backend, mode) => {
    const s = lab.host('server')
    const c = lab.host('client')
    await resetFirewall(s.run)
    const desired = compile(policy(c, mode), { backend, failsafe: DEFAULT_FAILSAFE })
    await applyDesired(s.run, desired, (await readHost(s.run)).ruleset, { modeChanged: true })
    for (const h of [s, c]) await runChecked(h.run, 'ip', ['neigh', 'flush', 'dev', 'eth0'])

    const targets: ProbeTarget[] = [s.ip6, s.ip4].flatMap((host) => [
      { proto: 'tcp', host, port: ALLOWED },
      { proto: 'tcp', host, port: BLOCKED },
      { proto: 'udp', host, port: host.includes(':') ? 546 : 68 },
    ])
    const got = await client.probe(targets, 1500)
    const want = ['open', 'timeout', 'open', 'open', 'timeout', 'open']
    table.push(
      `${backend} ${mode}: ${targets.map((t, i) => `${t.proto}/[${t.host}]:${t.port} ${got[i]}`).join(', ')}`,
    )
    expect(got).toEqual(want)

    // discovery resolved both ways (a dropped solicitation leaves the entry INCOMPLETE)
    for (const [h, peer] of [
      [s, c.ip6],
      [c, s.ip6],
      [s, c.ip4],
      [c, s.ip4],
    ] as const)
      expect(await neighbour(h.run, peer), `${h.name} -> ${peer}`).toMatch(
        /^(REACHABLE|STALE|DELAY|PROBE)$/,
      )

    const live = (await readHost(s.run)).ruleset
    expect(targets.map((t) => (predicted(live, t, c, s) ? 'open' : 'timeout'))).toEqual(want)
    expect(discoveryPredicted(live, c, s)).toBe(true)
  })
})
