import { describe, expect, it } from 'vitest'
import type { HostPolicy } from '@palisade/model'
import { compile } from './compile.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import { analyseImpact, dropsAfterUs } from './impact.js'
import { liveRuleset } from './live.fixture.js'
import type { Backend } from './ours.js'
import { BACKENDS } from './ours.js'
import type { Packet } from './packet-path.js'
import { kernelCtState, tracePacket } from './packet-path.js'
import { parseIptablesSave } from './parse-iptables.js'
import type { Chain, CtState, Match, Rule, Ruleset, Table } from './ruleset.js'

const rule = (text: string): Rule => {
  const [m, v] = text.split(' => ')
  const matches = (m ?? '')
    .split(' ')
    .filter(Boolean)
    .map((x): Match => {
      const [k, val = ''] = x.split('=')
      if (k === 'dport')
        return { kind: 'port', proto: 6, dir: 'dst', ranges: [[Number(val), Number(val)]] } as const
      if (k === 'ct') return { kind: 'ct_state', states: val.split(',') as CtState[] } as const
      if (k === 'src') return { kind: 'addr', dir: 'src', family: 4, cidrs: [val] } as const
      if (k === 'srcset') return { kind: 'addr', dir: 'src', family: 4, set: val } as const
      if (k === 'opaque') return { kind: 'opaque', text: val } as const
      throw new Error(k)
    })
  const vt = v ?? ''
  const verdict =
    vt === ''
      ? null
      : vt.startsWith('jump:')
        ? ({ kind: 'jump', target: vt.slice(5) } as const)
        : vt.startsWith('goto:')
          ? ({ kind: 'goto', target: vt.slice(5) } as const)
          : ({ kind: vt } as { kind: 'accept' })
  return { matches, verdict, text: text }
}
const base = (
  name: string,
  hook: 'input' | 'output',
  priority: number,
  rules: string[],
  policy: 'accept' | 'drop' = 'accept',
): Chain => ({
  name,
  base: { type: 'filter', hook, priority, policy },
  rules: rules.map(rule),
})
const user = (name: string, rules: string[]): Chain => ({ name, rules: rules.map(rule) })
const nft = (
  name: string,
  chains: Chain[],
  family: Table['family'] = 'inet',
  sets: Table['sets'] = [],
): Table => ({ family, name, source: 'nft', chains, sets })
const ipt = (chains: Chain[], source: Table['source'] = 'iptables-nft'): Table => ({
  family: 'ip',
  name: 'filter',
  source,
  chains,
  sets: [],
})
const rs = (...tables: Table[]): Ruleset => ({ tables, ipsets: [] })
const pkt = (dport: number, over: Partial<Packet> = {}): Packet => ({
  path: 'in',
  family: 4,
  src: '198.18.0.1',
  dst: '198.18.0.2',
  proto: 6,
  dport,
  ct: 'new',
  ...over,
})

describe('packet path model', () => {
  it.each<[string, Ruleset, Packet, string, boolean]>([
    [
      'nft: accept in an earlier table does not stop a later drop',
      rs(
        nft('a', [base('c', 'input', -10, ['dport=80 => accept'])]),
        nft('b', [base('c', 'input', 0, ['dport=80 => drop'])]),
      ),
      pkt(80),
      'drop',
      false,
    ],
    [
      'nft: a drop is final, later tables never see the packet',
      rs(
        nft('a', [base('c', 'input', -10, ['dport=80 => drop'])]),
        nft('b', [base('c', 'input', 0, ['dport=80 => accept'])]),
      ),
      pkt(80),
      'drop',
      false,
    ],
    [
      'nft: order is by priority, not listing',
      rs(
        nft('b', [base('c', 'input', 10, ['dport=80 => drop'])]),
        nft('a', [base('c', 'input', -10, [])]),
      ),
      pkt(80),
      'drop',
      false,
    ],
    [
      'iptables: ACCEPT ends the chain before a later DROP',
      rs(ipt([base('INPUT', 'input', 0, ['dport=80 => accept', ' => drop'])])),
      pkt(80),
      'accept',
      false,
    ],
    [
      'iptables: RETURN from a user chain continues in the caller',
      rs(
        ipt([
          base('INPUT', 'input', 0, ['dport=80 => jump:SUB', ' => drop']),
          user('SUB', [' => return', ' => accept']),
        ]),
      ),
      pkt(80),
      'drop',
      false,
    ],
    [
      'iptables: falling off a user chain returns too',
      rs(
        ipt([
          base('INPUT', 'input', 0, ['dport=80 => jump:SUB', ' => drop']),
          user('SUB', ['dport=81 => accept']),
        ]),
      ),
      pkt(80),
      'drop',
      false,
    ],
    [
      'iptables: goto does not come back',
      rs(
        ipt([
          base('INPUT', 'input', 0, ['dport=80 => goto:SUB', ' => drop']),
          user('SUB', [' => return']),
        ]),
      ),
      pkt(80),
      'accept',
      false,
    ],
    [
      'chain policy drop decides what nothing accepted',
      rs(ipt([base('INPUT', 'input', 0, ['dport=22 => accept'], 'drop')])),
      pkt(80),
      'drop',
      false,
    ],
    [
      'conntrack: established skips the drop',
      rs(nft('a', [base('c', 'input', 0, ['ct=established,related => accept', ' => drop'])])),
      pkt(80, { ct: 'established' }),
      'accept',
      false,
    ],
    [
      'an ip6 table does not see IPv4',
      rs({ ...nft('x', [base('c', 'input', 0, [' => drop'])]), family: 'ip6' }),
      pkt(80),
      'accept',
      false,
    ],
    [
      'output path uses output chains only',
      rs(nft('a', [base('c', 'input', 0, [' => drop']), base('o', 'output', 0, [])])),
      pkt(80, { path: 'out' }),
      'accept',
      false,
    ],
    [
      'an opaque match is passed over and flagged',
      rs(nft('a', [base('c', 'input', 0, ['opaque=xt => drop'])])),
      pkt(80),
      'accept',
      true,
    ],
    [
      'a missing set is flagged',
      rs(nft('a', [base('c', 'input', 0, ['srcset=nope => drop'])])),
      pkt(80),
      'accept',
      true,
    ],
    [
      'a set is matched by its elements',
      rs(
        nft('a', [base('c', 'input', 0, ['srcset=s => drop'])], 'inet', [
          { name: 's', family: 4, elements: ['198.18.0.0/24'] },
        ]),
      ),
      pkt(80),
      'drop',
      false,
    ],
    [
      'a loop of jumps ends and is flagged',
      rs(ipt([base('INPUT', 'input', 0, [' => jump:A']), user('A', [' => jump:A'])])),
      pkt(80),
      'accept',
      true,
    ],
  ])('%s', (_n, ruleset, p, verdict, uncertain) => {
    const r = tracePacket(ruleset, p)
    expect(r.verdict).toBe(verdict)
    expect(r.uncertain).toBe(uncertain)
  })

  it('says whether our chains saw the packet and what they did', () => {
    const ours = nft('palisade', [base('input', 'input', -140, ['dport=80 => accept', ' => drop'])])
    const pre = nft('pre', [base('c', 'input', -150, ['dport=81 => drop'])])
    const after = nft('fw', [base('c', 'input', 10, ['dport=80 => drop'])])
    const set = rs(ours, pre, after)
    expect(tracePacket(set, pkt(80))).toMatchObject({
      verdict: 'drop',
      sawUs: true,
      ours: 'pass',
      decidedBy: { table: 'nft:inet:fw', index: 0 },
    })
    expect(tracePacket(set, pkt(81))).toMatchObject({ verdict: 'drop', sawUs: false })
    expect(tracePacket(set, pkt(82))).toMatchObject({
      verdict: 'drop',
      sawUs: true,
      ours: 'drop',
      decidedBy: { table: 'nft:inet:palisade', index: 1, ours: true },
    })
  })

  it("keeps the agent's channel to its server open through a concatenated address-and-port set", () => {
    const d = compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })
    const set = rs(...d.tables)
    const out = (dst: string, dport: number): Packet => ({
      path: 'out',
      family: 4,
      src: '198.18.0.2',
      dst,
      proto: 6,
      sport: 40000,
      dport,
      oif: 'eth0',
      ct: 'new',
    })
    expect(tracePacket(set, out('198.18.0.1', 8443))).toMatchObject({
      verdict: 'accept',
      uncertain: false,
      decidedBy: { chain: 'output', ours: true },
    })
    expect(tracePacket(set, out('198.18.0.1', 8444))).toMatchObject({
      verdict: 'drop',
      uncertain: false,
    })
    expect(tracePacket(set, out('198.18.0.9', 8443))).toMatchObject({
      verdict: 'drop',
      uncertain: false,
    })
  })

  it('follows iptables into our chain and records its outcome', () => {
    const t = parseIptablesSave(
      [
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':PALISADE-INPUT - [0:0]',
        '-A INPUT -p tcp -m tcp --dport 81 -j ACCEPT',
        '-A INPUT -j PALISADE-INPUT',
        '-A INPUT -p tcp -m tcp --dport 80 -j DROP',
        '-A PALISADE-INPUT -p tcp -m tcp --dport 80 -j RETURN',
        '-A PALISADE-INPUT -j DROP',
        'COMMIT',
      ].join('\n'),
      'ip',
      'iptables-nft',
    ).tables
    const set = rs(...t)
    expect(tracePacket(set, pkt(80))).toMatchObject({
      verdict: 'drop',
      sawUs: true,
      ours: 'pass',
      decidedBy: { chain: 'INPUT', index: 2 },
    })
    expect(tracePacket(set, pkt(81))).toMatchObject({ verdict: 'accept', sawUs: false })
    expect(tracePacket(set, pkt(82))).toMatchObject({ verdict: 'drop', sawUs: true, ours: 'drop' })
  })
})

describe('impact analysis', () => {
  it('classifies every foreign rule that can change our outcome (iptables, coexistence)', () => {
    const set = rs(
      ...parseIptablesSave(
        [
          '*filter',
          ':INPUT ACCEPT [0:0]',
          ':DOCKER-USER - [0:0]',
          ':PALISADE-INPUT - [0:0]',
          '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
          '-A INPUT -s 198.18.9.0/24 -j DROP',
          '-A INPUT -j PALISADE-INPUT',
          '-A INPUT -j DOCKER-USER',
          '-A DOCKER-USER -p tcp -m tcp --dport 8080 -j REJECT',
          '-A INPUT -j ACCEPT',
          '-A PALISADE-INPUT -j RETURN',
          'COMMIT',
        ].join('\n'),
        'ip',
        'iptables-nft',
      ).tables,
      nft('firewalld', [base('filter_INPUT', 'input', 10, ['dport=9090 => drop'], 'drop')]),
      nft('early', [base('c', 'input', -200, ['dport=23 => drop', 'dport=24 => accept'])]),
    )
    const got = analyseImpact(set, {
      backend: 'iptables-nft',
      mode: 'coexistence_non_primary',
    }).map((i) => [i.kind, i.verdict, i.traffic])
    expect(got).toEqual([
      ['pre-empt', 'drop', 'tcp dport 23'],
      ['bypass', 'accept', 'proto 6 tcp dport 22'],
      ['pre-empt', 'drop', 'from 198.18.9.0/24'],
      ['override', 'reject', 'proto 6 tcp dport 8080'],
      ['override', 'drop', 'tcp dport 9090'],
      ['override', 'drop', 'all traffic'],
    ])
  })

  it('marks what follows our final verdict as shadowed in exclusive mode', () => {
    const set = rs(
      ...parseIptablesSave(
        [
          '*filter',
          ':INPUT ACCEPT [0:0]',
          ':PALISADE-INPUT - [0:0]',
          '-A INPUT -j PALISADE-INPUT',
          '-A INPUT -p tcp -m tcp --dport 80 -j DROP',
          '-A INPUT -j ACCEPT',
          '-A PALISADE-INPUT -j ACCEPT',
          'COMMIT',
        ].join('\n'),
        'ip',
        'iptables-legacy',
      ).tables,
    )
    expect(
      analyseImpact(set, { backend: 'iptables-legacy', mode: 'exclusive' }).map((i) => [
        i.kind,
        i.verdict,
      ]),
    ).toEqual([
      ['shadowed', 'drop'],
      ['shadowed', 'accept'],
    ])
  })

  it('on nftables, places foreign drops by priority and ignores foreign accepts', () => {
    const set = rs(
      nft('palisade', [base('input', 'input', 20, [' => accept'])]),
      nft('firewalld', [
        base('filter_INPUT', 'input', 10, ['dport=80 => drop', 'dport=81 => accept']),
      ]),
      nft('late', [base('c', 'input', 30, ['dport=82 => reject'])]),
    )
    const impacts = analyseImpact(set, { backend: 'nftables', mode: 'coexistence_non_primary' })
    // inet tables act on both families, and are reported for each
    expect(impacts.filter((i) => i.family === 6)).toHaveLength(2)
    expect(
      impacts.filter((i) => i.family === 4).map((i) => [i.kind, i.rule.table, i.traffic]),
    ).toEqual([
      ['pre-empt', 'nft:inet:firewalld', 'tcp dport 80'],
      ['override', 'nft:inet:late', 'tcp dport 82'],
    ])
  })
})

describe('whether a foreign rule after ours can drop what we allow', () => {
  const policy = (mode: HostPolicy['mode']['mode']): HostPolicy => ({
    ...SAMPLE_POLICY,
    mode: { ...SAMPLE_POLICY.mode, mode },
  })
  const desired = (backend: Backend, mode: HostPolicy['mode']['mode'] = 'coexistence_primary') =>
    compile(policy(mode), { backend, failsafe: SAMPLE_FAILSAFE })
  // firewalld's filter chains sit at priority +10: after ours when first, before ours when last
  const firewalld = nft('firewalld', [base('filter_INPUT', 'input', 10, ['dport=80 => drop'])])
  const early = nft('early', [base('c', 'input', -200, ['dport=80 => drop'])])

  it.each([
    ['a drop after ours, our table not read yet', rs(firewalld), 'coexistence_primary', true],
    ['a drop only before ours, our table not read yet', rs(early), 'coexistence_primary', false],
    ['nothing foreign', rs(), 'exclusive', false],
    // read while non-primary put ours at +20, after firewalld: primary puts ours first again
    [
      'a survey of ours in another mode',
      rs(liveRuleset(desired('nftables', 'coexistence_non_primary')).tables[0] as Table, firewalld),
      'coexistence_primary',
      true,
    ],
    [
      'ours read first, going last',
      rs(liveRuleset(desired('nftables')).tables[0] as Table, firewalld),
      'coexistence_non_primary',
      false,
    ],
  ] as const)('nftables: %s', (_what, survey, mode, want) => {
    expect(dropsAfterUs(survey, desired('nftables', mode))).toBe(want)
  })

  it('iptables: cannot rule out a drop after us until a survey shows our hooks', () => {
    const d = desired('iptables-nft')
    expect(dropsAfterUs(rs(), d)).toBe(true)
    const live = liveRuleset(d)
    expect(dropsAfterUs(live, d)).toBe(false)
    const withDrop = liveRuleset(d, (_f, chain, hook) =>
      chain === 'INPUT' ? [hook, rule('dport=80 => drop')] : [hook],
    )
    expect(dropsAfterUs(withDrop, d)).toBe(true)
    // read while non-primary put our hook after a foreign rule: primary puts it first again
    const late = liveRuleset(d, (_f, chain, hook) =>
      chain === 'INPUT' ? [rule('dport=22 => accept'), hook] : [hook],
    )
    expect(dropsAfterUs(late, d)).toBe(true)
    // our chains jump into our counting chains: those jumps are no hooks out of place
    const counting = compile(policy('coexistence_primary'), {
      backend: 'iptables-nft',
      failsafe: SAMPLE_FAILSAFE,
      flowCounting: true,
    })
    expect(dropsAfterUs(liveRuleset(counting), counting)).toBe(false)
  })
})

describe('IPv6 through our chains in full enforcement', () => {
  const SERVER = 'fd00:198:18::2'
  const PEER = 'fd00:198:18::11' // allowed to TCP 5432 by the sample policy
  const v6 = (path: Packet['path'], over: Partial<Packet>): Packet => ({
    path,
    family: 6,
    src: path === 'in' ? PEER : SERVER,
    dst: path === 'in' ? SERVER : PEER,
    proto: 58,
    ct: 'new',
    ...(path === 'in' ? { iif: 'eth0' } : { oif: 'eth0' }),
    ...over,
  })
  const icmp = (type: number) => ({ icmp: { type, code: 0 } })
  const tcp = (dport: number) => ({ proto: 6, sport: 40000, dport })
  const udp = (sport: number, dport: number) => ({ proto: 17, sport, dport })
  const cases: [string, Packet, 'accept' | 'drop'][] = [
    ['a neighbour solicitation in', v6('in', { dst: 'ff02::1:ff00:2', ...icmp(135) }), 'accept'],
    ['a neighbour advertisement in', v6('in', icmp(136)), 'accept'],
    ['a neighbour solicitation out', v6('out', { dst: 'ff02::1:ff00:11', ...icmp(135) }), 'accept'],
    ['a neighbour advertisement out', v6('out', icmp(136)), 'accept'],
    [
      'a router advertisement in',
      v6('in', { src: 'fe80::1', dst: 'ff02::1', ...icmp(134) }),
      'accept',
    ],
    [
      'a router solicitation out',
      v6('out', { src: 'fe80::2', dst: 'ff02::2', ...icmp(133) }),
      'accept',
    ],
    ['a redirect in', v6('in', { src: 'fe80::1', ...icmp(137) }), 'accept'],
    ['an MLD query in', v6('in', { src: 'fe80::1', dst: 'ff02::1', ...icmp(130) }), 'accept'],
    ['an MLDv2 report out', v6('out', { src: 'fe80::2', dst: 'ff02::16', ...icmp(143) }), 'accept'],
    ['a packet-too-big for no known connection', v6('in', icmp(2)), 'accept'],
    ['a destination-unreachable out', v6('out', icmp(1)), 'accept'],
    ['a router solicitation in (we route nothing)', v6('in', icmp(133)), 'drop'],
    ['an unknown ICMPv6 type in', v6('in', icmp(200)), 'drop'],
    ['discovery forwarded through the host', v6('forward', icmp(135)), 'drop'],
    ['a DHCPv6 reply in', v6('in', { src: 'fe80::1', ...udp(547, 546) }), 'accept'],
    ['a DHCPv6 solicit out', v6('out', { dst: 'ff02::1:2', ...udp(546, 547) }), 'accept'],
    ['TCP from the allowed peer', v6('in', tcp(5432)), 'accept'],
    ['TCP from another peer', v6('in', { src: 'fd00:198:18::99', ...tcp(5432) }), 'drop'],
    ['TCP to a port the policy does not allow', v6('in', tcp(5433)), 'drop'],
  ]
  const modes = ['exclusive', 'coexistence_primary', 'coexistence_non_primary'] as const
  describe.each(BACKENDS.flatMap((b) => modes.map((m) => [b, m] as const)))(
    '%s, %s',
    (backend, mode) => {
      const policy = { ...SAMPLE_POLICY, mode: { ...SAMPLE_POLICY.mode, mode } }
      const live = liveRuleset(compile(policy, { backend, failsafe: SAMPLE_FAILSAFE }))
      it.each(cases)('%s: %s', (_name, packet, verdict) => {
        const r = tracePacket(live, packet)
        expect(r.verdict).toBe(verdict)
        expect(r.uncertain).toBe(false)
        expect(r.sawUs).toBe(true)
      })

      it('and the same over IPv4', () => {
        const v4 = (src: string, dport: number) =>
          pkt(dport, { src, dst: '198.18.0.2', sport: 40000, iif: 'eth0' })
        expect(tracePacket(live, v4('198.18.0.11', 5432)).verdict).toBe('accept')
        expect(tracePacket(live, v4('198.18.0.99', 5432)).verdict).toBe('drop')
        expect(tracePacket(live, v4('198.18.0.11', 5433)).verdict).toBe('drop')
      })
    },
  )

  it('knows that conntrack never tracks discovery, and finds no new connection in an error', () => {
    const p = (type: number, ct: Packet['ct']) => ({
      family: 6 as const,
      proto: 58,
      icmp: { type, code: 0 },
      ct,
    })
    expect(kernelCtState(p(135, 'established'))).toBe('untracked')
    expect(kernelCtState(p(143, 'new'))).toBe('untracked')
    expect(kernelCtState(p(2, 'new'))).toBe('invalid')
    expect(kernelCtState(p(2, 'related'))).toBe('related')
    expect(kernelCtState(p(128, 'new'))).toBe('new')
    expect(kernelCtState({ family: 4, proto: 1, icmp: { type: 3, code: 0 }, ct: 'new' })).toBe(
      'new',
    )
  })
})
