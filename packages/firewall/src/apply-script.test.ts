import type { CoexistenceMode } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import type { ApplyOptions, ToolCommand } from './apply-script.js'
import { applyScript } from './apply-script.js'
import { compile } from './compile.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import type { Backend, Desired } from './ours.js'
import { BACKENDS } from './ours.js'
import { liveRuleset as live } from './live.fixture.js'
import type { NamedSet, Rule, Ruleset, Table } from './ruleset.js'

const desired = (backend: Backend, mode: CoexistenceMode = 'coexistence_primary'): Desired =>
  compile(
    { ...SAMPLE_POLICY, mode: { ...SAMPLE_POLICY.mode, mode } },
    { backend, failsafe: SAMPLE_FAILSAFE },
  )
const idle = (backend: Backend): Desired =>
  compile(
    { ...SAMPLE_POLICY, enforcementMode: 'idle', mode: { ...SAMPLE_POLICY.mode, applied: false } },
    { backend, failsafe: SAMPLE_FAILSAFE },
  )

const FOREIGN: Rule = {
  matches: [{ kind: 'port', proto: 6, dir: 'dst', ranges: [[22, 22]] }],
  verdict: { kind: 'accept' },
  text: '-p tcp -m tcp --dport 22 -j ACCEPT',
}
const mapTables = (rs: Ruleset, f: (t: Table) => Table): Ruleset => ({
  ...rs,
  tables: rs.tables.map(f),
})
const mapChain = (rs: Ruleset, chain: string, f: (rules: readonly Rule[]) => Rule[]): Ruleset =>
  mapTables(rs, (t) => ({
    ...t,
    chains: t.chains.map((c) => (c.name === chain ? { ...c, rules: f(c.rules) } : c)),
  }))
const mapFirstSet = (sets: readonly NamedSet[]) =>
  sets.map((s, i) => (i === 0 ? { ...s, elements: ['198.18.7.7/32'] } : s))

/** A command as `tool args`, and the lines of its stdin that change something. */
const shape = (c: ToolCommand) => `${c.cmd} ${c.args.join(' ')}`
const lines = (c: ToolCommand | undefined, re: RegExp) =>
  (c?.stdin ?? '').split('\n').filter((l) => re.test(l))

const KEEP: ApplyOptions = { modeChanged: false }
const CHANGED: ApplyOptions = { modeChanged: true }

describe('apply script: nftables', () => {
  const d = desired('nftables')
  const base = live(d)
  it.each<[string, Desired, Ruleset, ApplyOptions, string, RegExp[]]>([
    ['nothing to do', d, base, KEEP, 'none', []],
    [
      'a peer change: set elements only',
      d,
      // The first rule's sets: its single addresses (none wanted), then its prefixes.
      mapTables(base, (t) => ({
        ...t,
        sets: mapFirstSet(t.sets).map((s, i) => (i === 1 ? { ...s, elements: [] } : s)),
      })),
      KEEP,
      'sets',
      [
        /^delete element inet palisade peers_[0-9a-f]{10}_v4 \{ 198\.18\.7\.7 \}$/m,
        /^add element inet palisade peers_[0-9a-f]{10}_v4_nets \{ 198\.19\.66\.0\/24 \}$/m,
      ],
    ],
    [
      'a tampered chain: that chain rebuilt, sets left alone',
      d,
      mapChain(base, 'output', (r) => r.slice(1)),
      KEEP,
      'rules',
      [
        /^flush chain inet palisade output\ndelete chain inet palisade output\nadd chain inet palisade output \{ type filter hook output priority -140; policy accept; \}\n/,
        /^add rule inet palisade output ct state established,related counter accept/m,
      ],
    ],
    [
      'a chain added to our table under a name we never write: the table is replaced',
      d,
      mapTables(base, (t) => ({
        ...t,
        chains: [...t.chains, { name: 'made-by-hand', rules: [] }],
      })),
      KEEP,
      'full',
      [/^table inet palisade\ndelete table inet palisade\ntable inet palisade \{\n/],
    ],
    [
      'our table deleted',
      d,
      { tables: [], ipsets: [] },
      KEEP,
      'full',
      [/^table inet palisade\ndelete table inet palisade\ntable inet palisade \{\n/],
    ],
    [
      'a mode change, even with nothing else changed',
      desired('nftables', 'coexistence_non_primary'),
      base,
      CHANGED,
      'full',
      [/type filter hook input priority 20; policy accept;/],
    ],
    [
      'going idle: the table is removed',
      idle('nftables'),
      base,
      KEEP,
      'full',
      [/^table inet palisade\ndelete table inet palisade\n$/],
    ],
  ])('%s', (_name, want, actual, opts, kind, stdin) => {
    const { plan, commands } = applyScript(want, actual, opts)
    expect(plan.kind).toBe(kind)
    expect(commands.map(shape)).toEqual(kind === 'none' ? [] : ['nft -f -'])
    for (const re of stdin) expect(commands[0]?.stdin).toMatch(re)
    if (kind === 'rules') expect(commands[0]?.stdin).not.toMatch(/chain inet palisade input/)
  })
})

describe.each(BACKENDS.filter((b) => b !== 'nftables'))('apply script: %s', (backend) => {
  const variant = backend === 'iptables-legacy' ? 'legacy' : 'nft'
  const wait = backend === 'iptables-legacy' ? ' --wait 5' : ''
  const restore = [
    `iptables-${variant}-restore --noflush${wait}`,
    `ip6tables-${variant}-restore --noflush${wait}`,
  ]
  const d = desired(backend)
  const base = live(d)

  it('does nothing when the kernel holds what we want', () => {
    expect(applyScript(d, base, KEEP)).toEqual({ plan: { kind: 'none' }, commands: [] })
  })

  it('changes only set elements for a peer change', () => {
    const { plan, commands } = applyScript(d, { ...base, ipsets: mapFirstSet(base.ipsets) }, KEEP)
    expect(plan.kind).toBe('sets')
    expect(commands.map(shape)).toEqual(['ipset restore'])
    expect(lines(commands[0], /./)).toEqual([
      expect.stringMatching(/^del palisade-[0-9a-f]{10}-v4 198\.18\.7\.7\/32 -exist$/),
      expect.stringMatching(/^add palisade-[0-9a-f]{10}-v4 198\.19\.66\.0\/24 -exist$/),
      // then the entry counts, for the read-back, in the same run
      'list -t',
    ])
    expect(commands[0]?.countsAfter).toBe(true)
  })

  it('repairs a tampered chain without touching any set', () => {
    const { plan, commands } = applyScript(
      d,
      mapChain(base, 'PALISADE-OUTPUT', (r) => r.slice(1)),
      KEEP,
    )
    expect(plan).toEqual({
      kind: 'rules',
      chains: ['PALISADE-OUTPUT'],
      tables: ['ip filter', 'ip6 filter'],
    })
    expect(commands.map(shape)).toEqual(restore)
    // our chains are declared (flushed) and refilled; hooks in place stay where they are
    expect(lines(commands[0], /^:/)).toEqual([
      ':PALISADE-INPUT - [0:0]',
      ':PALISADE-OUTPUT - [0:0]',
      ':PALISADE-FORWARD - [0:0]',
    ])
    expect(lines(commands[0], /^-[DI] /)).toEqual([])
  })

  it('commits a rules repair only for the family that drifted', () => {
    const flushedIn = (family: string): Ruleset =>
      mapTables(base, (t) =>
        t.family !== family
          ? t
          : {
              ...t,
              chains: t.chains.map((c) => (c.name === 'PALISADE-INPUT' ? { ...c, rules: [] } : c)),
            },
      )
    const v4 = applyScript(d, flushedIn('ip'), KEEP)
    expect(v4.plan).toEqual({ kind: 'rules', chains: ['PALISADE-INPUT'], tables: ['ip filter'] })
    expect(v4.commands.map(shape)).toEqual([restore[0]])
    const v6 = applyScript(d, flushedIn('ip6'), KEEP)
    expect(v6.plan).toEqual({ kind: 'rules', chains: ['PALISADE-INPUT'], tables: ['ip6 filter'] })
    expect(v6.commands.map(shape)).toEqual([restore[1]])
  })

  it('stages new sets in place, then commits the rules, when nothing is there yet', () => {
    const { plan, commands } = applyScript(d, { tables: [], ipsets: [] }, KEEP)
    expect(plan.kind).toBe('full')
    expect(commands.map(shape)).toEqual(['ipset restore', ...restore, 'ipset restore'])
    expect(lines(commands[0], /^create /).every((l) => !/-t hash:net/.test(l))).toBe(true)
    // With nothing to swap, a run after the commit lists the entry counts alone.
    expect(commands[3]).toMatchObject({ stdin: 'list -t\n', countsAfter: true })
    expect(commands.map((c) => c.countsAfter === true)).toEqual([false, false, false, true])
    expect(lines(commands[1], /^-I /)).toEqual([
      expect.stringMatching(/^-I INPUT 1 -m comment --comment palisade:\w+ -j PALISADE-INPUT$/),
      expect.stringMatching(/^-I OUTPUT 1 .* -j PALISADE-OUTPUT$/),
      expect.stringMatching(/^-I FORWARD 1 .* -j PALISADE-FORWARD$/),
    ])
  })

  it('swaps staged contents into sets rules may use, after the commit', () => {
    const { commands } = applyScript(d, base, CHANGED)
    expect(commands.map(shape)).toEqual(['ipset restore', ...restore, 'ipset restore'])
    const staged = lines(commands[0], /^(flush|add) /)
    expect(staged.length).toBeGreaterThan(0)
    expect(staged.every((l) => /^\w+ palisade-\w+-v[46]-t( |$)/.test(l))).toBe(true)
    expect(lines(commands[3], /^swap /)).toHaveLength(d.ipsets.length)
    // The entry counts come from the last run, after the swap, not from the stage.
    expect(lines(commands[0], /^list /)).toEqual([])
    expect(commands[3]?.stdin).toMatch(/\nlist -t\n$/)
    expect(commands.map((c) => c.countsAfter === true)).toEqual([false, false, false, true])
  })

  it('destroys our stale sets and chains, and nothing foreign', () => {
    const stale: Ruleset = {
      tables: base.tables.map((t) => ({
        ...t,
        chains: [
          ...t.chains,
          { name: 'PALISADE-AOLD', rules: [] },
          { name: 'PALISADE-OLD', rules: [] },
          { name: 'DOCKER-USER', rules: [] },
        ],
      })),
      ipsets: [
        ...base.ipsets,
        { name: 'palisade-0123456789-v4', family: 4, elements: [] },
        { name: 'docker-x', family: 4, elements: [] },
      ],
    }
    const { plan, commands } = applyScript(d, stale, KEEP)
    expect(plan.kind).toBe('full')
    // Swapped in, then the stale set destroyed, in one run after the commit.
    expect(commands.map(shape)).toEqual(['ipset restore', ...restore, 'ipset restore'])
    for (const c of commands.slice(1, 3)) {
      // all emptied before any goes: one may jump to another (ours jump to counting chains)
      expect(lines(c, /^-[FX] /)).toEqual([
        '-F PALISADE-AOLD',
        '-F PALISADE-OLD',
        '-X PALISADE-AOLD',
        '-X PALISADE-OLD',
      ])
      // deleted last: no hook may jump to a chain when it goes
      expect(c.stdin).toMatch(/-X PALISADE-OLD\nCOMMIT\n$/)
    }
    expect(lines(commands[3], /^destroy /)).toEqual([
      ...d.ipsets.map((x) => `destroy ${x.name}-t`),
      'destroy palisade-0123456789-v4',
    ])
    expect(commands[3]?.stdin).toMatch(/^swap [^]*\ndestroy palisade-0123456789-v4\nlist -t\n$/)
  })

  it('removes every object of ours when going idle', () => {
    const { commands } = applyScript(idle(backend), base, KEEP)
    expect(commands.map(shape)).toEqual([...restore, 'ipset restore'])
    expect(lines(commands[0], /^-D /)).toEqual([
      expect.stringMatching(/^-D INPUT .*-j PALISADE-INPUT$/),
      expect.stringMatching(/^-D OUTPUT .*-j PALISADE-OUTPUT$/),
      expect.stringMatching(/^-D FORWARD .*-j PALISADE-FORWARD$/),
    ])
    expect(lines(commands[0], /^-X /)).toHaveLength(3)
    expect(lines(commands[2], /^destroy /)).toHaveLength(base.ipsets.length)
  })

  describe('a foreign rule inserted before our hook', () => {
    const before = (f: string, c: string, h: Rule) =>
      f === 'ip' && c === 'INPUT' ? [FOREIGN, h] : [h]
    it.each<[CoexistenceMode, string[]]>([
      // exclusive: the foreign rule is overwritten, and our hook put back on top
      [
        'exclusive',
        [
          `-D INPUT ${FOREIGN.text}`,
          '-D INPUT -m comment --comment palisade:',
          '-I INPUT 1 -m comment --comment palisade:',
        ],
      ],
      // primary: our hook moves back to the top, the foreign rule stays (now after us)
      [
        'coexistence_primary',
        ['-D INPUT -m comment --comment palisade:', '-I INPUT 1 -m comment --comment palisade:'],
      ],
    ])('%s', (mode, expected) => {
      const want = desired(backend, mode)
      const { plan, commands } = applyScript(want, live(want, before), KEEP)
      // Only the IPv4 table drifted: the IPv6 one is not committed again.
      expect(plan).toEqual({ kind: 'rules', chains: ['INPUT'], tables: ['ip filter'] })
      expect(commands.map(shape)).toEqual([restore[0]])
      const v4 = lines(commands[0], /^-[DI] /)
      expect(v4).toHaveLength(expected.length)
      expected.forEach((e, i) => expect(v4[i]?.startsWith(e), v4[i]).toBe(true))
    })

    it('coexistence_non_primary: tolerated, and placed last again only on a mode change', () => {
      const want = desired(backend, 'coexistence_non_primary')
      expect(applyScript(want, live(want, before), KEEP).commands).toEqual([])
      const { commands } = applyScript(want, live(want, before), CHANGED)
      expect(lines(commands[1], /^-[DIA] (INPUT|OUTPUT|FORWARD) /)).toEqual([
        expect.stringMatching(/^-D INPUT .*-j PALISADE-INPUT$/),
        expect.stringMatching(/^-D OUTPUT .*-j PALISADE-OUTPUT$/),
        expect.stringMatching(/^-D FORWARD .*-j PALISADE-FORWARD$/),
        expect.stringMatching(/^-A INPUT .*-j PALISADE-INPUT$/),
        expect.stringMatching(/^-A OUTPUT .*-j PALISADE-OUTPUT$/),
        expect.stringMatching(/^-A FORWARD .*-j PALISADE-FORWARD$/),
      ])
      expect(lines(commands[1], /^-D INPUT -p tcp/)).toEqual([])
    })
  })
})
