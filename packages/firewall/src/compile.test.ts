import { describe, expect, it } from 'vitest'
import type { EnforcementMode, VisibilityLevel } from '@palisade/model'
import type { Desired } from './ours.js'
import { compile, ESSENTIAL_ICMPV6, splitPeers } from './compile.js'
import { BACKENDS } from './ours.js'
import { decodeFlowLogPrefix, encodeFlowLogPrefix } from './flow-log.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import { renderIpsetStage, renderIpsetSwap, renderIptablesRestore } from './render-iptables.js'
import { renderNftScript } from './render-nft.js'
import type { Rule } from './ruleset.js'

const NO_STATE = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }

describe('compiler', () => {
  it('renders the nftables table with sets, priorities and ids', () => {
    const d = compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })
    const text = renderNftScript(d)
    expect(text).toMatch(/^table inet palisade\ndelete table inet palisade\n/)
    expect(text).toContain('type filter hook input priority -140; policy accept;')
    // single addresses in a set nft changes without reading it, prefixes in an interval set
    expect(text).toMatch(
      /set peers_([0-9a-f]{10})_v4 \{ type ipv4_addr; elements = \{ 198\.18\.0\.11 \}; \}\n {2}set peers_\1_v4_nets \{ type ipv4_addr; flags interval; elements = \{ 198\.18\.0\.12\/31 \}; \}/,
    )
    expect(text).toMatch(
      /set peers_[0-9a-f]{10}_v6 \{ type ipv6_addr; elements = \{ fd00:198:18::11 \}; \}/,
    )
    for (const set of ['v4', 'v4_nets', 'v6'])
      expect(text).toMatch(
        new RegExp(
          `ip6? saddr @peers_[0-9a-f]{10}_${set} tcp dport 6000-6010 counter log prefix "pal:A:i:[0-9a-f]{8}" group 4720 snaplen 128 queue-threshold 1 accept comment "palisade:[0-9a-f]{16}"`,
        ),
      )
    // the agent's channel to its server: one lookup in a concatenated address-and-port set
    expect(text).toContain(
      'set failsafe_v4 { type ipv4_addr . inet_service; elements = { 198.18.0.1 . 8443 }; }',
    )
    expect(text).toContain('ip daddr . tcp dport @failsafe_v4 counter accept')
    // every rule carries an id, and ids are unique
    const ids = [...text.matchAll(/comment "palisade:([0-9a-f]{16})"/g)].map((m) => m[1])
    expect(ids.length).toBe(text.split('\n').filter((l) => l.includes(' counter ')).length)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('puts a non-primary nftables chain after iptables and firewalld', () => {
    const p = {
      ...SAMPLE_POLICY,
      mode: { ...SAMPLE_POLICY.mode, mode: 'coexistence_non_primary' as const },
    }
    expect(
      renderNftScript(compile(p, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })),
    ).toContain('priority 20;')
    expect(() =>
      compile(p, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE, priority: -250 }),
    ).toThrow(/above -200/)
  })

  it('uses RETURN for allows in coexistence and ACCEPT in exclusive (iptables)', () => {
    const coex = renderIptablesRestore(
      compile(SAMPLE_POLICY, { backend: 'iptables-nft', failsafe: SAMPLE_FAILSAFE }),
      'ip',
      NO_STATE,
    )
    expect(coex).toMatch(
      /-A PALISADE-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment palisade:[0-9a-f]{16} -j RETURN/,
    )
    expect(coex).toMatch(/-I INPUT 1 -m comment --comment palisade:[0-9a-f]{16} -j PALISADE-INPUT/)
    expect(coex).toMatch(/-A PALISADE-INPUT -m comment --comment palisade:[0-9a-f]{16} -j DROP\n/)
    const excl = { ...SAMPLE_POLICY, mode: { ...SAMPLE_POLICY.mode, mode: 'exclusive' as const } }
    const text = renderIptablesRestore(
      compile(excl, { backend: 'iptables-nft', failsafe: SAMPLE_FAILSAFE }),
      'ip',
      NO_STATE,
    )
    expect(text).toMatch(
      /--ctstate ESTABLISHED,RELATED -m comment --comment palisade:[0-9a-f]{16} -j ACCEPT/,
    )
    expect(text).not.toContain('-j RETURN')
  })

  it('renders only the family that applies: no ICMPv6 in ip, no ICMP in ip6', () => {
    const d = compile(SAMPLE_POLICY, { backend: 'iptables-legacy', failsafe: SAMPLE_FAILSAFE })
    const v4 = renderIptablesRestore(d, 'ip', NO_STATE)
    const v6 = renderIptablesRestore(d, 'ip6', NO_STATE)
    expect(v4).toContain('-p icmp -m icmp --icmp-type 8')
    expect(v4).not.toContain('icmp6')
    expect(v6).toContain('-p ipv6-icmp -m icmp6 --icmpv6-type 128/0')
    expect(v6).not.toContain('--icmp-type')
    expect(v6).not.toContain('198.18.0.1/32')
  })

  it('splits a /0 for ipset, which cannot hold one, and only swaps sets that rules may use', () => {
    const d = compile(SAMPLE_POLICY, { backend: 'iptables-nft', failsafe: SAMPLE_FAILSAFE })
    const fresh = renderIpsetStage(d.ipsets, new Set())
    expect(fresh).toMatch(
      /add palisade-[0-9a-f]{10}-v4 0\.0\.0\.0\/1\nadd palisade-[0-9a-f]{10}-v4 128\.0\.0\.0\/1/,
    )
    expect(renderIpsetSwap(d.ipsets, new Set())).toBe('')
    const existing = new Set(d.ipsets.map((s) => s.name))
    const staged = renderIpsetStage(d.ipsets, existing)
    // a set rules may already use is never flushed or filled in place: only its `-t` stage is
    expect(
      staged
        .split('\n')
        .filter((l) => /^(flush|add) /.test(l))
        .every((l) => /^(flush|add) palisade-[0-9a-f]{10}-v[46]-t( |$)/.test(l)),
    ).toBe(true)
    expect(renderIpsetSwap(d.ipsets, existing)).toMatch(
      /^swap palisade-[0-9a-f]{10}-v4-t palisade-[0-9a-f]{10}-v4\ndestroy palisade-[0-9a-f]{10}-v4-t\n/,
    )
    for (const s of d.ipsets) expect(s.name.length).toBeLessThanOrEqual(31 - 2)
  })

  it('compiles an idle workload to nothing, which removes our rules', () => {
    const idle = {
      ...SAMPLE_POLICY,
      enforcementMode: 'idle' as const,
      mode: { ...SAMPLE_POLICY.mode, applied: false },
    }
    const d = compile(idle, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })
    expect(d.tables).toEqual([])
    expect(renderNftScript(d)).toBe('table inet palisade\ndelete table inet palisade\n')
  })

  it('keeps rule ids stable when only peers change, so a peer change is a set update', () => {
    const a = compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })
    const rules = SAMPLE_POLICY.rules.map((r) =>
      r.key === '/r/2#in'
        ? { ...r, peers: { v4: ['198.18.0.99/32', '198.18.0.64/30'], v6: [] } }
        : r,
    )
    const b = compile(
      { ...SAMPLE_POLICY, rules },
      { backend: 'nftables', failsafe: SAMPLE_FAILSAFE },
    )
    expect(b.tables[0]?.chains).toEqual(a.tables[0]?.chains)
    expect(b.tables[0]?.sets).not.toEqual(a.tables[0]?.sets)
  })

  it('skips enforced blocks in visibility only: potentially blocked traffic passes', () => {
    const vis = { ...SAMPLE_POLICY, enforcementMode: 'visibility_only' as const }
    const text = renderNftScript(compile(vis, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE }))
    expect(text).not.toContain(' drop ')
  })

  describe('flow logs follow the visibility level and the enforcement state', () => {
    // [enforcement, visibility, the (decision:direction:rule-or-default) prefixes expected]
    const cases: [EnforcementMode, VisibilityLevel, string[]][] = [
      ['full', 'flow_off', []],
      ['full', 'flow_drops', ['B:i:-', 'B:i:rule', 'B:o:-']],
      ['full', 'flow_summary', ['A:i:rule', 'A:o:rule', 'B:i:-', 'B:i:rule', 'B:o:-']],
      ['full', 'flow_full_detail', ['A:i:rule', 'A:o:rule', 'B:i:-', 'B:i:rule', 'B:o:-']],
      ['selective', 'flow_drops', ['B:i:rule', 'P:i:-', 'P:o:-']],
      ['selective', 'flow_summary', ['A:i:rule', 'A:o:rule', 'B:i:rule', 'P:i:-', 'P:o:-']],
      ['visibility_only', 'flow_off', []],
      ['visibility_only', 'flow_drops', ['P:i:-', 'P:i:rule', 'P:o:-']],
      ['visibility_only', 'flow_summary', ['A:i:rule', 'A:o:rule', 'P:i:-', 'P:i:rule', 'P:o:-']],
    ]
    const prefixes = (d: Desired) =>
      [
        ...new Set(
          d.tables
            .flatMap((t) => t.chains.flatMap((c) => c.rules))
            .flatMap((r) => (r.log ? [r.log.prefix.replace(/[0-9a-f]{8}$/, 'rule').slice(4)] : [])),
        ),
      ].sort()
    it.each(cases)('%s at %s', (enforcementMode, visibilityLevel, expected) => {
      const p = { ...SAMPLE_POLICY, enforcementMode, visibilityLevel }
      for (const backend of BACKENDS) {
        const d = compile(p, { backend, failsafe: SAMPLE_FAILSAFE })
        expect(prefixes(d), backend).toEqual(expected)
        for (const r of d.tables.flatMap((t) => t.chains.flatMap((c) => c.rules))) {
          if (!r.log) continue
          const tag = decodeFlowLogPrefix(r.log.prefix)
          expect(tag, r.log.prefix).toBeDefined()
          // a potentially blocked connection passes: only a blocked one meets a drop
          if (r.verdict) expect(r.verdict.kind === 'drop').toBe(tag?.decision === 'blocked')
          // iptables cannot log and decide in one rule
          expect(r.verdict === null).toBe(backend !== 'nftables')
        }
      }
    })

    it('logs each rule to the configured group, and reads back what it wrote', () => {
      const p = { ...SAMPLE_POLICY, visibilityLevel: 'flow_summary' as const }
      const d = compile(p, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE, flowLogGroup: 9 })
      expect(renderNftScript(d)).toContain('log prefix "pal:B:i:-" group 9 snaplen 128')
      expect(encodeFlowLogPrefix('allowed', 'outbound', 'k')).toMatch(/^pal:A:o:[0-9a-f]{8}$/)
      expect(decodeFlowLogPrefix('pal:P:i:-')).toEqual({
        decision: 'potentially_blocked',
        direction: 'inbound',
        ruleLogKey: null,
      })
      for (const bad of ['pal:X:i:-', 'pal:A:i:12', 'LOG ', 'pal:A:f:-'])
        expect(decodeFlowLogPrefix(bad)).toBeUndefined()
    })
  })
})

describe('IPv6 works wherever IPv4 does', () => {
  const MODES = ['exclusive', 'coexistence_primary', 'coexistence_non_primary'] as const
  const STATES = ['visibility_only', 'selective', 'full'] as const
  const cases = BACKENDS.flatMap((backend) =>
    MODES.flatMap((mode) => STATES.map((state) => [backend, mode, state] as const)),
  )
  const icmp6Types = (rules: readonly Rule[]) =>
    rules.flatMap((r) =>
      r.matches.flatMap((m) => (m.kind === 'icmp' && m.family === 6 ? [m.type] : [])),
    )
  const udpPort = (r: Rule) =>
    r.matches.flatMap((m) => (m.kind === 'port' && m.proto === 17 ? [m.ranges[0]?.[0]] : []))[0]

  it.each(cases)(
    '%s, %s, %s: essential ICMPv6 and DHCPv6 pass in the failsafe part',
    (backend, mode, state) => {
      const p = { ...SAMPLE_POLICY, enforcementMode: state, mode: { ...SAMPLE_POLICY.mode, mode } }
      const d = compile(p, { backend, failsafe: SAMPLE_FAILSAFE })
      const allow = mode === 'exclusive' || backend === 'nftables' ? 'accept' : 'return'
      const listed: readonly number[] = [...ESSENTIAL_ICMPV6.input, ...ESSENTIAL_ICMPV6.output]
      for (const t of d.tables) {
        for (const c of t.chains) {
          const dir = /input$/i.test(c.name) ? 'input' : /output$/i.test(c.name) ? 'output' : null
          const essential = c.rules.filter((r) => icmp6Types([r]).some((x) => listed.includes(x)))
          if (t.family === 'ip' || dir === null) {
            // no ICMPv6 in an IPv4 table; forwarded traffic is not the host's own
            expect(essential, `${t.family} ${c.name}`).toEqual([])
            continue
          }
          const types = icmp6Types(essential).sort((a, b) => a - b)
          expect(types, c.name).toEqual(ESSENTIAL_ICMPV6[dir])
          for (const r of essential) expect(r.verdict, c.name).toEqual({ kind: allow })
          // in the failsafe part: before the first rule of the policy (one that logs or blocks)
          const policyStart = c.rules.findIndex(
            (r) =>
              r.log !== undefined || r.verdict?.kind === 'drop' || r.verdict?.kind === 'reject',
          )
          const dhcp = c.rules.filter((r) => udpPort(r) === (dir === 'input' ? 546 : 547))
          expect(
            dhcp.map((r) => r.verdict),
            `${c.name} DHCPv6`,
          ).toEqual([{ kind: allow }])
          for (const r of [...essential, ...dhcp])
            expect(c.rules.indexOf(r), c.name).toBeLessThan(policyStart)
        }
      }
    },
  )

  it('renders them as each tool writes them', () => {
    const nft = renderNftScript(
      compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE }),
    )
    expect(nft).toMatch(/icmpv6 type 135 counter accept comment/)
    expect(nft).toMatch(/meta nfproto ipv6 udp dport 546 counter accept comment/)
    const ipt = compile(SAMPLE_POLICY, { backend: 'iptables-legacy', failsafe: SAMPLE_FAILSAFE })
    expect(renderIptablesRestore(ipt, 'ip6', NO_STATE)).toMatch(
      /-A PALISADE-OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 143 -m comment --comment palisade:[0-9a-f]{16} -j RETURN/,
    )
    expect(renderIptablesRestore(ipt, 'ip', NO_STATE)).not.toContain('icmp6')
  })
})

describe('peers split into single addresses and wider prefixes', () => {
  it.each<[string, string[], 4 | 6, string[], string[]]>([
    [
      'addresses only',
      ['198.18.0.1/32', '198.18.0.3/32'],
      4,
      ['198.18.0.1/32', '198.18.0.3/32'],
      [],
    ],
    ['both', ['198.18.0.0/24', '198.18.1.1/32'], 4, ['198.18.1.1/32'], ['198.18.0.0/24']],
    ['a /32 is a prefix in IPv6', ['fd00::/32', 'fd00::1/128'], 6, ['fd00::1/128'], ['fd00::/32']],
    ['none', [], 4, [], []],
  ])('%s', (_name, cidrs, family, addresses, nets) => {
    expect(splitPeers(cidrs, family)).toEqual({ addresses, nets })
    // Asked again of the same list, the same answer; of another family, its own.
    expect(splitPeers(cidrs, family)).toEqual({ addresses, nets })
  })

  it('answers the same list for the other family by that family', () => {
    const list = ['fd00::/32']
    expect(splitPeers(list, 6)).toEqual({ addresses: [], nets: ['fd00::/32'] })
    expect(splitPeers(list, 4)).toEqual({ addresses: ['fd00::/32'], nets: [] })
  })
})
