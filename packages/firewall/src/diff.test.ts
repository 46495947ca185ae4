import { describe, expect, it } from 'vitest'
import type { Desired } from './ours.js'
import { compile } from './compile.js'
import type { Drift } from './diff.js'
import { diff, elementChanges, isTampering } from './diff.js'
import { SAMPLE_FAILSAFE, SAMPLE_POLICY } from './host-policy.fixture.js'
import { planApply } from './plan.js'
import type { Chain, Rule, Ruleset, Table } from './ruleset.js'

const nft = compile(SAMPLE_POLICY, { backend: 'nftables', failsafe: SAMPLE_FAILSAFE })
const ipt = compile(SAMPLE_POLICY, { backend: 'iptables-nft', failsafe: SAMPLE_FAILSAFE })
const FOREIGN: Rule = {
  matches: [{ kind: 'port', proto: 6, dir: 'dst', ranges: [[22, 22]] }],
  verdict: { kind: 'accept' },
  text: '-p tcp -m tcp --dport 22 -j ACCEPT',
}

/** What a perfect read-back of the desired state looks like, iptables hooks included. */
function live(
  d: Desired,
  builtin: (family: string, chain: string, hook: Rule) => Rule[] = (_f, _c, h) => [h],
): Ruleset {
  const tables: Table[] = d.tables.map((t) => {
    const hooks = d.hooks.filter((h) => h.family === t.family)
    const builtins: Chain[] = hooks.map((h) => ({
      name: h.chain,
      base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' },
      rules: builtin(t.family, h.chain, h.rule),
    }))
    return { ...t, chains: [...builtins, ...t.chains] }
  })
  return { tables, ipsets: d.ipsets }
}

const mapChain = (
  rs: Ruleset,
  chain: string,
  f: (rules: readonly Rule[]) => Rule[],
  family = 'inet',
): Ruleset => ({
  ...rs,
  tables: rs.tables.map((t) =>
    t.family !== family
      ? t
      : { ...t, chains: t.chains.map((c) => (c.name === chain ? { ...c, rules: f(c.rules) } : c)) },
  ),
})
const kinds = (ds: Drift[]) => ds.map((d) => d.kind)

describe('the same question asked twice', () => {
  it('gets the same answer, which the asker may keep as its own', () => {
    const rs = mapChain(live(nft), 'input', (rules) => rules.slice(1))
    const first = diff(nft, rs)
    expect(kinds(first)).toEqual(['rule_removed'])
    first.push({ kind: 'set_missing', set: 'x' })
    expect(kinds(diff(nft, rs))).toEqual(['rule_removed'])
    // Another desired state for the same ruleset is another question.
    expect(kinds(diff(ipt, rs))).not.toEqual(['rule_removed'])
  })
})

describe('drift classification', () => {
  it('finds nothing when the kernel holds exactly what we rendered', () => {
    expect(diff(nft, live(nft))).toEqual([])
    expect(diff(ipt, live(ipt))).toEqual([])
    expect(planApply(nft, [])).toEqual({ kind: 'none' })
  })

  const base = live(nft)
  it.each<[string, Ruleset, string[]]>([
    [
      'one of our rules deleted',
      mapChain(base, 'input', (r) => r.filter((_, i) => i !== 2)),
      ['rule_removed'],
    ],
    [
      'a foreign rule added into our chain',
      mapChain(base, 'input', (r) => [...r.slice(0, 3), FOREIGN, ...r.slice(3)]),
      ['rule_added'],
    ],
    [
      'a rule edited in place',
      mapChain(base, 'input', (r) =>
        r.map((x, i) => (i === 3 ? { ...x, verdict: { kind: 'drop' } } : x)),
      ),
      ['rule_changed'],
    ],
    [
      'two rules swapped',
      mapChain(base, 'input', (r) =>
        [r[0], r[2], r[1], ...r.slice(3)].filter((x): x is Rule => !!x),
      ),
      ['rule_moved'],
    ],
    [
      'our chain flushed',
      mapChain(base, 'output', () => []),
      // one for each of the chain's 20 rules (10 of them the essential ICMPv6 going out, 4 the
      // lookups of /r/4's peers: single addresses and prefixes, in each family)
      new Array<string>(20).fill('rule_removed'),
    ],
    [
      'our chain deleted',
      {
        ...base,
        tables: base.tables.map((t) => ({
          ...t,
          chains: t.chains.filter((c) => c.name !== 'forward'),
        })),
      },
      ['chain_missing'],
    ],
    ['our table deleted (nft flush ruleset)', { tables: [], ipsets: [] }, ['table_missing']],
    [
      'a set element added',
      {
        ...base,
        tables: base.tables.map((t) => ({
          ...t,
          sets: t.sets.map((s, i) =>
            i === 0 ? { ...s, elements: [...s.elements, '198.18.7.7/32'] } : s,
          ),
        })),
      },
      ['set_elements'],
    ],
    [
      'a set deleted',
      { ...base, tables: base.tables.map((t) => ({ ...t, sets: t.sets.slice(1) })) },
      ['set_missing'],
    ],
    [
      'a base chain priority changed',
      {
        ...base,
        tables: base.tables.map((t) => ({
          ...t,
          chains: t.chains.map((c) =>
            c.name === 'input' && c.base ? { ...c, base: { ...c.base, priority: 50 } } : c,
          ),
        })),
      },
      ['chain_changed'],
    ],
  ])('nftables: %s', (_n, actual, want) => {
    const ds = diff(nft, actual)
    expect(kinds(ds)).toEqual(want)
    expect(ds.every((d) => isTampering(d, nft))).toBe(true)
  })

  it('plans a rules-only repair when every set is intact', () => {
    const actual = mapChain(
      mapChain(base, 'input', (r) => r.slice(1)),
      'output',
      () => [],
    )
    expect(planApply(nft, diff(nft, actual))).toEqual({
      kind: 'rules',
      chains: ['input', 'output'],
      tables: ['inet palisade'],
    })
    const withSet = {
      ...actual,
      tables: actual.tables.map((t) => ({ ...t, sets: t.sets.slice(1) })),
    }
    expect(planApply(nft, diff(nft, withSet))).toEqual({ kind: 'full' })
  })

  it('does not compare set contents it did not read', () => {
    const terse: Ruleset = {
      ...base,
      elementsOmitted: true,
      tables: base.tables.map((t) => ({ ...t, sets: t.sets.map((s) => ({ ...s, elements: [] })) })),
    }
    expect(diff(nft, terse)).toEqual([])
    expect(
      kinds(
        diff(nft, { ...terse, tables: terse.tables.map((t) => ({ ...t, sets: t.sets.slice(1) })) }),
      ),
    ).toEqual(['set_missing'])
  })

  it('plans a set-only change as element updates, anything else as a full apply', () => {
    const actual: Ruleset = {
      ...base,
      tables: base.tables.map((t) => ({
        ...t,
        sets: t.sets.map((s, i) => (i === 0 ? { ...s, elements: ['198.18.7.7/32'] } : s)),
      })),
    }
    const plan = planApply(nft, diff(nft, actual))
    expect(plan.kind).toBe('sets')
    expect(plan.kind === 'sets' && plan.changes[0]?.remove).toEqual(['198.18.7.7/32'])
    expect(planApply(nft, diff(nft, { tables: [], ipsets: [] }))).toEqual({ kind: 'full' })
  })

  it('iptables: hook missing, duplicated, or behind a foreign rule', () => {
    expect(
      kinds(
        diff(
          ipt,
          live(ipt, () => []),
        ),
      ),
    ).toEqual([
      'hook_missing',
      'hook_missing',
      'hook_missing',
      'hook_missing',
      'hook_missing',
      'hook_missing',
    ])
    const dup = diff(
      ipt,
      live(ipt, (f, c, h) => (f === 'ip' && c === 'INPUT' ? [h, h] : [h])),
    )
    expect(kinds(dup)).toEqual(['hook_duplicated'])
    const behind = diff(
      ipt,
      live(ipt, (f, c, h) => (f === 'ip' && c === 'INPUT' ? [FOREIGN, h] : [h])),
    )
    expect(behind).toEqual([
      {
        kind: 'hook_not_first',
        table: 'ip filter',
        chain: 'INPUT',
        index: 1,
        foreignBefore: [FOREIGN.text],
      },
    ])
    // tampering where our hook must be first; tolerated in non-primary
    expect(isTampering(behind[0] as Drift, { hookPosition: 'first' })).toBe(true)
    expect(isTampering(behind[0] as Drift, { hookPosition: 'last' })).toBe(false)
    expect(planApply({ hookPosition: 'last' }, behind)).toEqual({ kind: 'none' })
  })

  it('iptables: ipset elements and leftovers after going idle', () => {
    const actual = live(ipt)
    const changed = {
      ...actual,
      ipsets: actual.ipsets.map((s, i) => (i === 2 ? { ...s, elements: [] } : s)),
    }
    expect(kinds(diff(ipt, changed))).toEqual(['set_elements'])
    const idle = compile(
      {
        ...SAMPLE_POLICY,
        enforcementMode: 'idle',
        mode: { ...SAMPLE_POLICY.mode, applied: false },
      },
      { backend: 'iptables-nft', failsafe: SAMPLE_FAILSAFE },
    )
    const left = diff(idle, actual)
    expect(new Set(kinds(left))).toEqual(
      new Set(['chain_unwanted', 'hook_unwanted', 'set_unwanted']),
    )
    expect(left.some((d) => isTampering(d, idle))).toBe(false)
  })
})

describe('element changes', () => {
  const cases: [string, string[], string[], { added: string[]; removed: string[] }][] = [
    ['the same', ['a', 'b', 'c'], ['a', 'b', 'c'], { added: [], removed: [] }],
    [
      'one more in the middle',
      ['a', 'b', 'c'],
      ['a', 'b', 'x', 'c'],
      { added: ['x'], removed: [] },
    ],
    ['one fewer at the start', ['a', 'b', 'c'], ['b', 'c'], { added: [], removed: ['a'] }],
    ['one replaced at the end', ['a', 'b', 'c'], ['a', 'b', 'y'], { added: ['y'], removed: ['c'] }],
    [
      'another order, same elements',
      ['a', 'b', 'c', 'd'],
      ['a', 'c', 'b', 'd'],
      { added: [], removed: [] },
    ],
    [
      'another order, one changed',
      ['a', 'b', 'c'],
      ['c', 'x', 'a'],
      { added: ['x'], removed: ['b'] },
    ],
    ['nothing in common', ['a', 'b'], ['c'], { added: ['c'], removed: ['a', 'b'] }],
    ['empty want', [], ['a'], { added: ['a'], removed: [] }],
    ['empty have', ['a'], [], { added: [], removed: ['a'] }],
  ]
  it.each(cases)('%s', (_name, want, have, expected) => {
    expect(elementChanges(want, have)).toEqual(expected)
  })

  it('compares a list found equal in another order through its equal, with the same answers', () => {
    const read = ['d', 'b', 'a', 'c']
    expect(elementChanges(['a', 'b', 'c', 'd'], read)).toEqual({ added: [], removed: [] })
    expect(elementChanges(['a', 'b', 'c', 'd', 'e'], read)).toEqual({ added: [], removed: ['e'] })
    expect(elementChanges(['a', 'c', 'd'], read)).toEqual({ added: ['b'], removed: [] })
    expect(elementChanges(['x', 'a', 'b', 'd'], read)).toEqual({ added: ['c'], removed: ['x'] })
    expect(elementChanges(read, read)).toEqual({ added: [], removed: [] })
  })

  it('remembers no equality it did not find', () => {
    const read = ['b', 'a', 'z']
    expect(elementChanges(['a', 'b'], read)).toEqual({ added: ['z'], removed: [] })
    expect(elementChanges(['a', 'b', 'z'], read)).toEqual({ added: [], removed: [] })
  })
})
