import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { HostPolicy } from '@palisade/model'
import { compile } from './compile.js'
import { diff } from './diff.js'
import {
  countedProtocol,
  countingRules,
  connlabelName,
  FLOW_COUNTED_LABEL,
  FLOW_COUNTERS,
  foreignSetsCountedLabel,
  flowCountTag,
  flowCountTags,
  isFlowCountChange,
  parseNftFlowCounts,
  parseNftGenerationLive,
  renderNftFlip,
} from './flow-count.js'
import { ruleLogKey } from './flow-log.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import { parseNftJson, parseNftRuleExpr } from './parse-nft.js'
import { renderNftRule, renderNftScript } from './render-nft.js'
import type { Match, Rule } from './ruleset.js'

/** Captured from nft 1.0.6 after real connections between two namespaces. */
const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', name), 'utf8')

const counting = (p: HostPolicy = SAMPLE_POLICY) =>
  compile(p, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE, flowCounting: true })
const rulesOf = (p?: HostPolicy) =>
  counting(p).tables.flatMap((t) => t.chains.flatMap((c) => c.rules.map((r) => ({ c: c.name, r }))))

const TCP_5432: Match = { kind: 'port', proto: 6, dir: 'dst', ranges: [[5432, 5432]] }
const PEERS_V4: Match = { kind: 'addr', dir: 'src', family: 4, set: 'peers_x_v4' }

describe('counting allowed connections in the kernel (nftables)', () => {
  it('counts allowed connections of rules that pin a protocol, and logs everything else', () => {
    const rules = rulesOf()
    const counted = rules.filter((x) => x.r.count)
    const tag2 = flowCountTag('inbound', '/r/2#in')
    const tag3 = flowCountTag('inbound', '/r/3#in')
    // /r/2: v4 single addresses and nets, v6 addresses, x 3 services, x 2 generations
    expect(counted.filter((x) => x.r.count?.tag === tag2)).toHaveLength(3 * 3 * 2)
    // /r/3 (any peer): ICMP echo (v4), ICMPv6 echo (v6), GRE (both families), x 2 generations
    expect(counted.filter((x) => x.r.count?.tag === tag3)).toHaveLength((1 + 1 + 2) * 2)
    // TCP counts its SYN only (the SYN test stands for a TCP-only match); others their first packet
    for (const { r } of counted) {
      const proto = countedProtocol(r.matches)
      expect(r.count?.syn, JSON.stringify(r)).toBe(proto === 6 || proto === undefined)
    }
    expect(counted.every((x) => x.r.verdict === null && !x.r.log)).toBe(true)
    // the deciding rule follows, neither logged nor counting
    const allow2 = rules.filter(
      (x) =>
        x.r.verdict?.kind === 'accept' &&
        x.r.matches.some((m) => m.kind === 'addr' && m.set?.startsWith('peers_16dd83e760')),
    )
    expect(allow2.length).toBe(9)
    expect(allow2.every((x) => !x.r.log && !x.r.count)).toBe(true)
    // any protocol (/r/4, no port to key on): logged as before
    const logged = rules.filter((x) => x.r.log?.prefix.startsWith('pal:A:'))
    expect(logged.length).toBeGreaterThan(0)
    expect(logged.every((x) => countedProtocol(x.r.matches) === undefined)).toBe(true)
    // blocks and the defaults are logged: only allowed connections are counted
    expect(rules.some((x) => x.r.log?.prefix.startsWith('pal:B:'))).toBe(true)
    expect(counting().tables[0]?.counters).toEqual(FLOW_COUNTERS)
  })

  it.each([
    ['no flowCounting option', { flowCounting: false }, SAMPLE_POLICY],
    ['an iptables backend', { backend: 'iptables-nft' as const }, SAMPLE_POLICY],
    [
      'flow_full_detail (the key has no client port)',
      {},
      { ...SAMPLE_POLICY, visibilityLevel: 'flow_full_detail' as const },
    ],
    ['flow_drops', {}, { ...SAMPLE_POLICY, visibilityLevel: 'flow_drops' as const }],
  ])('counts nothing in the kernel with %s', (_name, opts, p) => {
    const d = compile(p, {
      backend: 'nftables',
      failsafe: SAMPLE_FAILSAFE,
      flowCounting: true,
      ...opts,
    })
    const rules = d.tables.flatMap((t) => t.chains.flatMap((c) => c.rules))
    expect(rules.some((r) => r.count)).toBe(false)
    expect(d.tables.some((t) => t.counters)).toBe(false)
  })

  it.each<[string, Match[], string[]]>([
    [
      'TCP, one family',
      [PEERS_V4, TCP_5432],
      [
        'ip saddr @peers_x_v4 tcp dport 5432 ct status != confirmed tcp flags & (syn | ack) == syn ct label ! 127 meta nfproto @flow_gen_a counter update @flows4_a { ip saddr . ip daddr . meta l4proto . ct original proto-dst . 0x0000002a } ct label set 127',
        'ip saddr @peers_x_v4 tcp dport 5432 ct status != confirmed tcp flags & (syn | ack) == syn ct label ! 127 meta nfproto @flow_gen_b counter update @flows4_b { ip saddr . ip daddr . meta l4proto . ct original proto-dst . 0x0000002a } ct label set 127',
      ],
    ],
    [
      'TCP without a port (the SYN test implies the protocol)',
      [{ kind: 'proto', proto: 6 }],
      [4, 6].flatMap((f) =>
        ['a', 'b'].map(
          (g) =>
            `ct status != confirmed tcp flags & (syn | ack) == syn ct label ! 127 meta nfproto @flow_gen_${g} counter update @flows${f}_${g} { ${f === 4 ? 'ip' : 'ip6'} saddr . ${f === 4 ? 'ip' : 'ip6'} daddr . meta l4proto . ct original proto-dst . 0x0000002a } ct label set 127`,
        ),
      ),
    ],
    [
      'ICMPv6 echo',
      [{ kind: 'icmp', family: 6, type: 128, code: 0 }],
      ['a', 'b'].map(
        (g) =>
          `icmpv6 type 128 icmpv6 code 0 ct status != confirmed ct label ! 127 meta nfproto @flow_gen_${g} counter update @flows6_${g} { ip6 saddr . ip6 daddr . meta l4proto . ct original proto-dst . 0x0000002a } ct label set 127`,
      ),
    ],
    ['any protocol: nothing to key on', [PEERS_V4], []],
  ])('renders the counting rules for %s', (_name, matches, want) => {
    expect(countingRules(matches, 42).map(renderNftRule)).toEqual(want)
  })

  it.each([
    ['generation', { generation: 'a } drop; #' }],
    ['family', { family: 5 }],
    ['tag', { tag: 2 ** 32 }],
    ['tag', { tag: -1 }],
  ])('refuses a count with a %s outside the grammar', (_field, bad) => {
    const [rule] = countingRules([PEERS_V4, TCP_5432], 42)
    const count = { ...rule?.count, ...bad } as unknown as Rule['count']
    expect(() => renderNftRule({ matches: [], verdict: null, count })).toThrow(
      /cannot render count/,
    )
  })

  it('reads back what nft lists: the compiled table, flipped and holding counts, has no drift', () => {
    const d = counting()
    const tables = parseNftJson(fixture('nft-flow-count-table.json'))
    expect(tables[0]?.counters).toEqual([...FLOW_COUNTERS].sort())
    expect(diff(d, { tables, ipsets: [] })).toEqual([])
    const counted = tables[0]?.chains.flatMap((c) => c.rules.filter((r) => r.count)) ?? []
    expect(counted.length).toBe(rulesOf().filter((x) => x.r.count).length)
  })

  it('sees a counting rule that someone changed, and counting sets that went', () => {
    const d = counting()
    const doc = JSON.parse(fixture('nft-flow-count-table.json')) as {
      nftables: Record<string, { expr?: unknown[]; name?: string }>[]
    }
    const withCount = doc.nftables.find((o) =>
      JSON.stringify(o.rule?.expr ?? []).includes('"@flow_gen_a"'),
    )
    const expr = withCount?.rule?.expr ?? []
    // the generation switch pointed at the other copy's set
    const tampered = JSON.parse(
      JSON.stringify(expr).replace('@flow_gen_a', '@flow_gen_b'),
    ) as unknown[]
    const before = parseNftRuleExpr(expr)
    const after = parseNftRuleExpr(tampered)
    expect(before.count).toBeDefined()
    expect(after.count).toBeUndefined()
    expect(after.matches.some((m) => m.kind === 'opaque')).toBe(true)
    // a rule without the first-packet test counts every packet: not ours either
    const noTest = expr.filter((e) => !JSON.stringify(e).includes('"status"'))
    expect(parseNftRuleExpr(noTest).count).toBeUndefined()
    const tables = parseNftJson(fixture('nft-flow-count-table.json')).map((t) => ({
      ...t,
      counters: (t.counters ?? []).filter((n) => n !== 'flows6_b'),
    }))
    expect(diff(d, { tables, ipsets: [] })).toEqual([{ kind: 'set_missing', set: 'flows6_b' }])
    // counting switched off: the sets left over are removed (a full replacement), not tampering
    const off = compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })
    expect(renderNftScript(off)).not.toContain('flow_gen')
    const drifts = diff(off, {
      tables: parseNftJson(fixture('nft-flow-count-table.json')),
      ipsets: [],
    })
    expect(
      drifts.filter((x) => x.kind === 'set_unwanted').map((x) => ('set' in x ? x.set : '')),
    ).toEqual([...FLOW_COUNTERS].sort())
  })

  it('parses the counts the kernel kept, real connections between two namespaces', () => {
    expect(parseNftFlowCounts(fixture('nft-flow-counts-v4.json'))).toEqual({
      entries: [
        { src: '198.18.200.2', dst: '198.18.200.1', proto: 1, port: 2048, tag: 42, connections: 1 },
        {
          src: '198.18.200.2',
          dst: '198.18.200.1',
          proto: 17,
          port: 5353,
          tag: 43,
          connections: 4,
        },
        {
          src: '198.18.200.2',
          dst: '198.18.200.1',
          proto: 6,
          port: 8080,
          tag: 3144308890,
          connections: 7,
        },
      ],
      full: false,
    })
    expect(parseNftFlowCounts(fixture('nft-flow-counts-v6.json')).entries).toEqual([
      {
        src: 'fd00:198:18::2',
        dst: 'fd00:198:18::1',
        proto: 6,
        port: 8080,
        tag: 3144308890,
        connections: 3,
      },
    ])
    // a set as full as its size
    const full = fixture('nft-flow-counts-v4.json').replace('"size": 262144', '"size": 3')
    expect(parseNftFlowCounts(full).full).toBe(true)
    expect(() => parseNftFlowCounts('{"nftables": []}')).toThrow(/no set/)
    expect(() => parseNftFlowCounts('nft: no such set')).toThrow(/not JSON/)
  })

  it('reads a counting rule whose mark comes before its count as changed (it would count nothing)', () => {
    const doc = JSON.parse(fixture('nft-flow-count-table.json')) as {
      nftables: Record<string, { expr?: unknown[] }>[]
    }
    const expr =
      doc.nftables.find((o) => JSON.stringify(o.rule?.expr ?? []).includes('"@flow_gen_a"'))?.rule
        ?.expr ?? []
    const mark = expr.filter((e) => JSON.stringify(e).includes('"mangle"'))
    expect(mark).toHaveLength(1)
    const early = [...mark, ...expr.filter((e) => !mark.includes(e))]
    expect(parseNftRuleExpr(early).count).toBeUndefined()
  })

  it.each([
    ['its mark no longer set', (e: string) => !e.includes('"mangle"')],
    ['its test for a counted connection gone', (e: string) => !e.includes('"op": "!"')],
  ])('reads a counting rule with %s as changed', (_what, keep) => {
    const doc = JSON.parse(fixture('nft-flow-count-table.json')) as {
      nftables: Record<string, { expr?: unknown[] }>[]
    }
    const expr =
      doc.nftables.find((o) => JSON.stringify(o.rule?.expr ?? []).includes('"@flow_gen_a"'))?.rule
        ?.expr ?? []
    expect(parseNftRuleExpr(expr).count).toBeDefined()
    const kept = expr.filter((e) => keep(JSON.stringify(e).replace(/":/g, '": ')))
    expect(kept).toHaveLength(expr.length - 1)
    const changed = parseNftRuleExpr(kept)
    expect(changed.count).toBeUndefined()
    expect(changed.matches.some((m) => m.kind === 'opaque')).toBe(true)
  })

  it.each([
    ['', undefined],
    ['# 127 commented\n1 other', undefined],
    ['127 ovn-mark', 'ovn-mark'],
    ['  0x7f\thex # comment', 'hex'],
    ['0177 octal', 'octal'],
    ['177 decimal', undefined],
    ['1270 longer', undefined],
  ])('tells the name connlabel.conf %j gives label 127', (conf, name) => {
    expect(connlabelName(conf, FLOW_COUNTED_LABEL)).toBe(name)
  })

  it('sees a foreign rule that sets the counted label, and only that label', () => {
    // nft -j list ruleset of a namespace holding one such rule and one setting label 5
    const evade = parseNftJson(
      '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "evade", "handle": 1}}, {"chain": {"family": "inet", "table": "evade", "name": "c", "handle": 1, "type": "filter", "hook": "input", "prio": -160, "policy": "accept"}}, {"rule": {"family": "inet", "table": "evade", "chain": "c", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"mangle": {"key": {"ct": {"key": "label"}}, "value": 127}}]}}, {"rule": {"family": "inet", "table": "evade", "chain": "c", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8081}}, {"mangle": {"key": {"ct": {"key": "label"}}, "value": 5}}]}}]}',
    )
    const ours = parseNftJson(fixture('nft-flow-count-table.json'))
    expect(foreignSetsCountedLabel({ tables: evade, ipsets: [] })).toBe(true)
    // our own counting rules set it: not foreign
    expect(foreignSetsCountedLabel({ tables: ours, ipsets: [] })).toBe(false)
    const five = evade.map((t) => ({
      ...t,
      chains: t.chains.map((c) => ({ ...c, rules: c.rules.slice(1) })),
    }))
    expect(foreignSetsCountedLabel({ tables: five, ipsets: [] })).toBe(false)
  })

  it('flips generations in two steps, both live between them, and tells which one is live', () => {
    expect(renderNftFlip('b')).toEqual([
      'add element inet palisade flow_gen_b { ipv4, ipv6 }\n',
      'flush set inet palisade flow_gen_a\n',
    ])
    const gen = (elem: string) =>
      `{"nftables": [{"metainfo": {}}, {"set": {"family": "inet", "name": "flow_gen_a", "table": "palisade", "type": "nf_proto", "handle": 2${elem}}}]}`
    expect(parseNftGenerationLive(gen(', "elem": ["ipv4", "ipv6"]'))).toBe(true)
    expect(parseNftGenerationLive(gen(''))).toBe(false)
  })

  it.each([
    ['add element inet palisade flow_gen_b { ipv4 }', true],
    ['delete element inet palisade flow_gen_a { ipv6 }', true],
    [
      'delete element inet palisade flows4_a { 198.18.0.2 . 198.18.0.1 . tcp . 80 . 0x0000002a }',
      true,
    ],
    ['flush set inet palisade flows6_b', true],
    ['add element inet palisade peers_1864ffae12_v4 { 198.18.0.9 }', false],
    ['add element inet palisade flows4_ab { 1 }', false],
    // nft names may hold `-`, `.` and `/`: another set whose name starts as ours is not ours
    ['add element inet palisade flows4_a-x { 1 }', false],
    ['flush set inet palisade flow_gen_a.y', false],
    ['delete rule inet palisade input handle 7', false],
    ['add element inet foreign flow_gen_a { ipv4 }', false],
  ])('a monitor line %s is the flow reader’s own: %s', (line, want) => {
    expect(isFlowCountChange(line)).toBe(want)
  })

  it('names each allowed rule with a tag the agent maps back', () => {
    const tags = flowCountTags(SAMPLE_POLICY.rules)
    expect(tags.get(flowCountTag('inbound', '/r/2#in'))).toEqual({
      decision: 'allowed',
      direction: 'inbound',
      ruleLogKey: ruleLogKey('/r/2#in'),
    })
    expect(new Set(SAMPLE_POLICY.rules.map((r) => flowCountTag(r.direction, r.key))).size).toBe(5)
    expect(flowCountTag('outbound', '/r/2#in')).not.toBe(flowCountTag('inbound', '/r/2#in'))
  })
})
