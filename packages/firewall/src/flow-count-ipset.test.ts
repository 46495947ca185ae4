import { describe, expect, it } from 'vitest'
import { compile } from './compile.js'
import { diff } from './diff.js'
import { foreignSetsCountedLabel, flowCountTag } from './flow-count.js'
import type { IpsetCount } from './flow-count-ipset.js'
import {
  countChain,
  countChainSpecs,
  countIpset,
  countIpsetPairs,
  ipsetCountTagger,
  isCountIpset,
  parseIpsetCounts,
} from './flow-count-ipset.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import type { Backend } from './ours.js'
import { parseIpsetHeaders, parseIpsetSave } from './parse-ipset.js'
import { parseIptablesSave } from './parse-iptables.js'
import { renderIpsetStage, renderIpsetSwap, renderIptablesRestore } from './render-iptables.js'
import type { Ruleset } from './ruleset.js'

const counting = (backend: Backend = 'iptables-nft', flowCounting = true) =>
  compile(SAMPLE_POLICY, { backend, failsafe: SAMPLE_FAILSAFE, flowCounting })
const NO_STATE = { hooksFound: [], modeChanged: true, foreignToDelete: [], staleChains: [] }

/**
 * `iptables-save` of a counting chain, as iptables 1.8.9 printed it (legacy and nf_tables
 * alike) after `iptables-restore` of what we write.
 */
const SAVED_COUNT_CHAIN = `*filter
:INPUT ACCEPT [0:0]
:PALISADE-COUNT-IN - [0:0]
-A PALISADE-COUNT-IN -m conntrack --ctstatus CONFIRMED -j RETURN
-A PALISADE-COUNT-IN -m connlabel --label "127" -j RETURN
-A PALISADE-COUNT-IN -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j RETURN
-A PALISADE-COUNT-IN -m connlabel --label "127" --set
-A PALISADE-COUNT-IN -m set --match-set palisade-flows4-in src,dst,dst -j RETURN
-A PALISADE-COUNT-IN -j SET --add-set palisade-flows4-in src,dst,dst
COMMIT
`

/** What the kernel holds after a perfect apply of `d`: our tables as iptables-save prints them. */
function saved(d: ReturnType<typeof counting>): Ruleset {
  const tables = (['ip', 'ip6'] as const).flatMap(
    (f) =>
      parseIptablesSave(
        renderIptablesRestore(d, f, NO_STATE)
          .replace(
            '*filter\n',
            '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n',
          )
          .replace(/^-I (\w+) 1 /gm, '-A $1 '),
        f,
        d.backend === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft',
      ).tables,
  )
  return { tables, ipsets: d.ipsets }
}

describe('counting allowed connections in the kernel (iptables)', () => {
  it('jumps to count before each allow of TCP, UDP or SCTP, with the rule it counts for', () => {
    const d = counting()
    for (const t of d.tables) {
      const input = t.chains.find((c) => c.name === 'PALISADE-INPUT')?.rules ?? []
      const jumps = input.flatMap((r, i) => (r.countTag !== undefined ? [i] : []))
      // /r/2: 3 services (TCP, TCP range, UDP), one peer set per family
      expect(jumps).toHaveLength(3)
      for (const i of jumps) {
        const [jump, allow] = [input[i], input[i + 1]]
        expect(jump?.verdict).toEqual({ kind: 'jump', target: 'PALISADE-COUNT-IN' })
        expect(jump?.countTag).toBe(flowCountTag('inbound', '/r/2#in'))
        expect(jump?.matches).toEqual(allow?.matches)
        expect(allow?.verdict?.kind).toBe('return')
      }
      // ICMP and GRE (/r/3) are logged: ipset keys have no ports for them
      expect(input.filter((r) => r.log?.prefix.startsWith('pal:A:')).length).toBeGreaterThan(0)
      const out = t.chains.find((c) => c.name === 'PALISADE-OUTPUT')?.rules ?? []
      // /r/4 allows every protocol: nothing pins one to count by
      expect(out.filter((r) => r.countTag !== undefined)).toEqual([])
      expect(t.chains.filter((c) => c.countsInto).map((c) => [c.name, c.countsInto])).toEqual([
        ['PALISADE-COUNT-IN', `palisade-flows${t.family === 'ip' ? 4 : 6}-in`],
        ['PALISADE-COUNT-OUT', `palisade-flows${t.family === 'ip' ? 4 : 6}-out`],
      ])
    }
    expect(d.ipsets.filter((s) => s.counts).map((s) => s.name)).toEqual(
      [4, 6].flatMap((f) =>
        ['in', 'out'].flatMap((x) => [`palisade-flows${f}-${x}`, `palisade-flows${f}-${x}-read`]),
      ),
    )
    expect(countIpsetPairs(d)).toHaveLength(4)
    // without counting asked for, nothing of it
    const plain = counting('iptables-nft', false)
    expect(plain.ipsets.filter((s) => s.counts)).toEqual([])
    expect(plain.tables.flatMap((t) => t.chains).filter((c) => c.countsInto)).toEqual([])
  })

  it('writes the counting chain as iptables-save prints it, and reads back what it wrote', () => {
    const d = counting('iptables-legacy')
    const text = renderIptablesRestore(d, 'ip', NO_STATE)
    const written = text.split('\n').filter((l) => l.startsWith('-A PALISADE-COUNT-IN '))
    expect(written).toEqual(SAVED_COUNT_CHAIN.split('\n').filter((l) => l.startsWith('-A ')))
    const [table] = parseIptablesSave(SAVED_COUNT_CHAIN, 'ip', 'iptables-legacy').tables
    expect(table?.chains.find((c) => c.name === 'PALISADE-COUNT-IN')).toEqual({
      name: 'PALISADE-COUNT-IN',
      rules: [],
      countsInto: 'palisade-flows4-in',
    })
    expect(diff(d, saved(d))).toEqual([])
  })

  it.each([
    [
      'a rule removed',
      (t: string) => t.replace(/^-A PALISADE-COUNT-IN -m connlabel --label "127" --set\n/m, ''),
    ],
    ['a rule added', (t: string) => t.replace('COMMIT', '-A PALISADE-COUNT-IN -j ACCEPT\nCOMMIT')],
    [
      'counting into another set',
      (t: string) => t.replaceAll('palisade-flows4-in ', 'palisade-flows4-out '),
    ],
    ['emptied', (t: string) => t.replace(/^-A PALISADE-COUNT-IN .*\n/gm, '')],
  ])('reads a counting chain %s as changed', (_what, tamper) => {
    const [table] = parseIptablesSave(tamper(SAVED_COUNT_CHAIN), 'ip', 'iptables-legacy').tables
    const chain = table?.chains.find((c) => c.name === 'PALISADE-COUNT-IN')
    expect(chain?.countsInto).toBeUndefined()
    const d = counting('iptables-legacy')
    const live = saved(d)
    const tampered: Ruleset = {
      ...live,
      tables: live.tables.map((t) =>
        t.family === 'ip'
          ? { ...t, chains: t.chains.map((c) => (c.name === chain?.name ? chain : c)) }
          : t,
      ),
    }
    const drifts = diff(d, tampered)
    expect(drifts.some((x) => x.kind === 'chain_changed' && x.chain === 'PALISADE-COUNT-IN')).toBe(
      true,
    )
  })

  it('creates a counting set only where it is missing, never emptying or swapping it', () => {
    const d = counting()
    const sets = d.ipsets.filter((s) => s.counts)
    const stage = renderIpsetStage(sets, new Set(sets.map((s) => s.name)))
    expect(stage.split('\n').filter(Boolean)).toEqual(
      sets.map(
        (s) =>
          `create ${s.name} hash:ip,port,ip family ${s.family === 4 ? 'inet' : 'inet6'} counters maxelem 262144 -exist`,
      ),
    )
    expect(renderIpsetSwap(sets, new Set(sets.map((s) => s.name)))).toBe('')
  })

  it('reads counting sets back as there, without their members (the kernel counts)', () => {
    const save = `create palisade-flows4-in hash:ip,port,ip family inet hashsize 1024 maxelem 262144 counters bucketsize 12 initval 0xdcbcd755
add palisade-flows4-in 198.18.0.2,tcp:8080,198.18.0.1 packets 20 bytes 1200
create palisade-ab12-v4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1
add palisade-ab12-v4 198.18.0.11
`
    expect(parseIpsetSave(save)).toEqual([
      { name: 'palisade-flows4-in', family: 4, elements: [], counts: true },
      { name: 'palisade-ab12-v4', family: 4, elements: ['198.18.0.11/32'] },
    ])
    const headers = parseIpsetHeaders(`Name: palisade-flows6-out-read
Type: hash:ip,port,ip
Revision: 6
Header: family inet6 hashsize 1024 maxelem 262144 counters bucketsize 12 initval 0x5
Size in memory: 208
References: 0
Number of entries: 3
`)
    expect(headers).toEqual([
      {
        name: 'palisade-flows6-out-read',
        type: 'hash:ip,port,ip',
        family: 6,
        entries: 3,
        counts: true,
      },
    ])
    expect(['palisade-flows4-in', 'palisade-flows6-out-read'].every(isCountIpset)).toBe(true)
    expect(['palisade-flows4-inx', 'palisade-ab12-v4', 'flows4-in'].some(isCountIpset)).toBe(false)
  })
})

describe('reading what the counting sets counted', () => {
  const sets = new Map([
    ['palisade-flows4-in-read', { family: 4 as const, direction: 'inbound' as const }],
    ['palisade-flows6-out-read', { family: 6 as const, direction: 'outbound' as const }],
  ])

  it('parses ipset save of the spares, as ipset 7.17 prints it', () => {
    const text = `create palisade-flows4-in-read hash:ip,port,ip family inet hashsize 1024 maxelem 262144 counters bucketsize 12 initval 0xdcbcd755
add palisade-flows4-in-read 198.18.0.2,tcp:8080,198.18.0.1 packets 20 bytes 1200
add palisade-flows4-in-read 198.18.0.3,udp:53,198.18.0.1 packets 0 bytes 0
create palisade-flows6-out-read hash:ip,port,ip family inet6 hashsize 1024 maxelem 262144 counters bucketsize 12 initval 0x1
add palisade-flows6-out-read fd00::1,sctp:9,fd00::2 packets 3 bytes 180
`
    expect(parseIpsetCounts(text, sets)).toEqual({
      counts: [
        {
          family: 4,
          direction: 'inbound',
          src: '198.18.0.2',
          dst: '198.18.0.1',
          proto: 6,
          port: 8080,
          connections: 20,
        },
        {
          family: 6,
          direction: 'outbound',
          src: 'fd00::1',
          dst: 'fd00::2',
          proto: 132,
          port: 9,
          connections: 3,
        },
      ],
      full: [],
    })
  })

  it.each([
    ['another set', 'add palisade-ab12-v4 198.18.0.11'],
    [
      'an ICMP key',
      'add palisade-flows4-in-read 198.18.0.2,icmp:echo-request,198.18.0.1 packets 1 bytes 84',
    ],
    ['no counters', 'add palisade-flows4-in-read 198.18.0.2,tcp:80,198.18.0.1'],
    ['another command', 'flush palisade-flows4-in-read'],
  ])('refuses %s', (_what, line) => {
    expect(() => parseIpsetCounts(`${line}\n`, sets)).toThrow(/flow counts/)
  })

  it('names the rule that counted a key: the first counting jump of its direction the key meets', () => {
    const d = counting()
    const tagOf = ipsetCountTagger(d)
    const key = (over: Partial<IpsetCount>): IpsetCount => ({
      family: 4,
      direction: 'inbound',
      src: '198.18.0.11',
      dst: '198.18.0.1',
      proto: 6,
      port: 5432,
      connections: 1,
      ...over,
    })
    const r2 = flowCountTag('inbound', '/r/2#in')
    expect(tagOf(key({}))).toBe(r2)
    // a peer of the set's prefix (198.18.0.12/31), the port range, UDP, IPv6
    expect(tagOf(key({ src: '198.18.0.13', port: 6005 }))).toBe(r2)
    expect(tagOf(key({ proto: 17, port: 53 }))).toBe(r2)
    expect(tagOf(key({ family: 6, src: 'fd00:198:18::11', dst: 'fd00::1' }))).toBe(r2)
    // no counting rule for: another peer, another port, the other direction
    expect(tagOf(key({ src: '198.18.0.14' }))).toBeUndefined()
    expect(tagOf(key({ port: 5433 }))).toBeUndefined()
    expect(tagOf(key({ direction: 'outbound' }))).toBeUndefined()
  })

  it('counting chains and sets are named within the grammar of our names', () => {
    expect(countChain('outbound')).toBe('PALISADE-COUNT-OUT')
    expect(countIpset(6, 'outbound', true)).toBe('palisade-flows6-out-read')
    expect(countChainSpecs('palisade-flows6-out')).toHaveLength(6)
  })
})

describe('a foreign iptables rule that sets the counted label', () => {
  const host = (text: string): Ruleset => ({
    tables: parseIptablesSave(
      `*filter\n:INPUT ACCEPT [0:0]\n${text}\nCOMMIT\n`,
      'ip',
      'iptables-nft',
    ).tables,
    ipsets: [],
  })

  it.each([
    ['sets it', '-A INPUT -m connlabel --label "127" --set', true],
    ['sets it, negated', '-A INPUT -m connlabel ! --label "127" --set', true],
    ['only tests it', '-A INPUT -m connlabel --label "127" -j ACCEPT', false],
    ['sets another', '-A INPUT -m connlabel --label "12" --set', false],
  ])('%s: %s', (_what, rule, want) => {
    expect(foreignSetsCountedLabel(host(rule))).toBe(want)
  })

  it('is not our own counting chain', () => {
    expect(foreignSetsCountedLabel(saved(counting()))).toBe(false)
  })
})
