import type { Desired } from './ours.js'
import { isHookIntoOurs, isOurChain, isOurIpset, isOurTable, NFT_TABLE } from './ours.js'
import { idOf } from './rule-id.js'
import type { Chain, NamedSet, Rule, Ruleset, Table } from './ruleset.js'
import { findTable, ruleBody } from './ruleset.js'

/** One difference between what we rendered and what the kernel holds. */
export type Drift =
  | { readonly kind: 'table_missing'; readonly table: string }
  | { readonly kind: 'table_unwanted'; readonly table: string }
  | { readonly kind: 'chain_missing'; readonly table: string; readonly chain: string }
  | { readonly kind: 'chain_unwanted'; readonly table: string; readonly chain: string }
  | {
      readonly kind: 'chain_changed'
      readonly table: string
      readonly chain: string
      readonly before: string
      readonly after: string
    }
  | {
      readonly kind: 'rule_removed'
      readonly table: string
      readonly chain: string
      readonly id: string
      readonly before: string
    }
  | {
      readonly kind: 'rule_added'
      readonly table: string
      readonly chain: string
      readonly index: number
      readonly after: string
    }
  | {
      readonly kind: 'rule_changed'
      readonly table: string
      readonly chain: string
      readonly id: string
      readonly before: string
      readonly after: string
    }
  | {
      readonly kind: 'rule_moved'
      readonly table: string
      readonly chain: string
      readonly id: string
      readonly from: number
      readonly to: number
    }
  | { readonly kind: 'hook_missing'; readonly table: string; readonly chain: string }
  | {
      readonly kind: 'hook_duplicated'
      readonly table: string
      readonly chain: string
      readonly count: number
    }
  | {
      readonly kind: 'hook_not_first'
      readonly table: string
      readonly chain: string
      readonly index: number
      readonly foreignBefore: readonly string[]
    }
  | { readonly kind: 'hook_unwanted'; readonly table: string; readonly chain: string }
  | { readonly kind: 'set_missing'; readonly set: string }
  | { readonly kind: 'set_unwanted'; readonly set: string }
  | {
      readonly kind: 'set_elements'
      readonly set: string
      readonly added: readonly string[]
      readonly removed: readonly string[]
    }

export type DriftKind = Drift['kind']

const describeRule = (r: Rule) => r.text ?? ruleBody(r)
const tableName = (t: Pick<Table, 'family' | 'name'>) => `${t.family} ${t.name}`
/** What a chain is apart from its rules: its hook, or (a counting chain) the set it counts into. */
const chainBase = (c: Chain) =>
  JSON.stringify(
    c.countsInto !== undefined
      ? { base: c.base ?? null, countsInto: c.countsInto }
      : (c.base ?? null),
  )

/** Indices (into `seq`) of a longest strictly increasing subsequence: the rules that kept their order. */
function longestIncreasing(seq: readonly number[]): Set<number> {
  const tails: number[] = []
  const prev = new Array<number>(seq.length).fill(-1)
  for (let i = 0; i < seq.length; i++) {
    let lo = 0
    let hi = tails.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((seq[tails[mid] ?? 0] ?? 0) < (seq[i] ?? 0)) lo = mid + 1
      else hi = mid
    }
    if (lo > 0) prev[i] = tails[lo - 1] ?? -1
    tails[lo] = i
  }
  const keep = new Set<number>()
  for (let i = tails[tails.length - 1] ?? -1; i >= 0; i = prev[i] ?? -1) keep.add(i)
  return keep
}

function diffChain(table: string, want: Chain, have: Chain): Drift[] {
  const out: Drift[] = []
  const chain = want.name
  if (chainBase(want) !== chainBase(have)) {
    out.push({
      kind: 'chain_changed',
      table,
      chain,
      before: chainBase(want),
      after: chainBase(have),
    })
  }
  const wantIndex = new Map(want.rules.map((r, i) => [idOf(r.comment) ?? '', i]))
  const seen = new Set<string>()
  const known: { id: string; at: number; wantAt: number }[] = []
  have.rules.forEach((r, at) => {
    const id = idOf(r.comment)
    const wantAt = id === undefined || seen.has(id) ? undefined : wantIndex.get(id)
    if (id === undefined || wantAt === undefined) {
      out.push({ kind: 'rule_added', table, chain, index: at, after: describeRule(r) })
      return
    }
    seen.add(id)
    const w = want.rules[wantAt]
    if (w && ruleBody(w) !== ruleBody(r)) {
      out.push({
        kind: 'rule_changed',
        table,
        chain,
        id,
        before: describeRule(w),
        after: describeRule(r),
      })
    }
    known.push({ id, at, wantAt })
  })
  const inOrder = longestIncreasing(known.map((k) => k.wantAt))
  known.forEach((k, i) => {
    if (!inOrder.has(i))
      out.push({ kind: 'rule_moved', table, chain, id: k.id, from: k.wantAt, to: k.at })
  })
  for (const [id, i] of wantIndex) {
    const w = want.rules[i]
    if (!seen.has(id) && w)
      out.push({ kind: 'rule_removed', table, chain, id, before: describeRule(w) })
  }
  return out
}

/**
 * Element lists found to hold the same elements as another (`have` to `want`), by identity. A
 * set read back comes in the kernel's order (hash order, not ours): it is compared whole once,
 * and from then on through its equal in our order, which the next desired state shares. Element
 * lists are never changed once made (readonly), so what was found stays true.
 */
const SAME_AS = new WeakMap<readonly string[], readonly string[]>()

/**
 * The elements only `have` holds (added) and only `want` holds (removed). Both list each element
 * once and, read back from what we wrote (or through SAME_AS), mostly in the same order: what
 * they share at the start and at the end is skipped in one pass, and only the rest is compared
 * as sets. (An element of one side's rest cannot be in the other's shared start or end: its
 * side would hold it twice.) A one-address change to a set of 100,000 thus costs one pass, not
 * two hash sets of 100,000.
 */
export function elementChanges(
  want: readonly string[],
  have: readonly string[],
): { added: string[]; removed: string[] } {
  if (want === have) return { added: [], removed: [] }
  const ordered = SAME_AS.get(have) ?? have
  let start = 0
  const shorter = Math.min(want.length, ordered.length)
  while (start < shorter && want[start] === ordered[start]) start++
  let end = 0
  while (end < shorter - start && want[want.length - 1 - end] === ordered[ordered.length - 1 - end])
    end++
  const w = want.slice(start, want.length - end)
  const h = ordered.slice(start, ordered.length - end)
  const ws = new Set(w)
  const hs = new Set(h)
  const added = h.filter((e) => !ws.has(e))
  const removed = w.filter((e) => !hs.has(e))
  // Only what took the sets to tell: an ordered pass costs no more the next time.
  if (added.length === 0 && removed.length === 0 && h.length > 0) SAME_AS.set(have, want)
  return { added, removed }
}

function diffSets(
  want: readonly NamedSet[],
  have: readonly NamedSet[],
  ours: (name: string) => boolean,
  elementsKnown: boolean,
): Drift[] {
  const out: Drift[] = []
  const haveByName = new Map(have.map((s) => [s.name, s]))
  for (const w of want) {
    const h = haveByName.get(w.name)
    if (!h) {
      out.push({ kind: 'set_missing', set: w.name })
      continue
    }
    if (!elementsKnown || w.counts) continue
    const { added, removed } = elementChanges(w.elements, h.elements)
    if (added.length > 0 || removed.length > 0)
      out.push({ kind: 'set_elements', set: w.name, added, removed })
  }
  const wanted = new Set(want.map((s) => s.name))
  for (const h of have)
    if (ours(h.name) && !wanted.has(h.name)) out.push({ kind: 'set_unwanted', set: h.name })
  return out
}

/** Counting sets are compared by name only: their elements are the kernel's counts. */
function diffCounters(want: readonly string[], have: readonly string[]): Drift[] {
  return [
    ...want.filter((n) => !have.includes(n)).map((set) => ({ kind: 'set_missing' as const, set })),
    ...have.filter((n) => !want.includes(n)).map((set) => ({ kind: 'set_unwanted' as const, set })),
  ]
}

function diffTable(want: Table | undefined, have: Table | undefined): Drift[] {
  const out: Drift[] = []
  if (want && !have) return [{ kind: 'table_missing', table: tableName(want) }]
  const name = tableName(want ?? have ?? { family: 'inet', name: '?' })
  const haveChains = new Map((have?.chains ?? []).map((c) => [c.name, c]))
  for (const c of want?.chains ?? []) {
    const h = haveChains.get(c.name)
    if (h) out.push(...diffChain(name, c, h))
    else out.push({ kind: 'chain_missing', table: name, chain: c.name })
  }
  const wanted = new Set((want?.chains ?? []).map((c) => c.name))
  for (const h of have?.chains ?? []) {
    if (have && isOurChain(have, h.name) && !wanted.has(h.name))
      out.push({ kind: 'chain_unwanted', table: name, chain: h.name })
  }
  return out
}

/** Our hooks in built-in iptables chains: rules that jump into one of our chains. */
export function findHooks(
  table: Table | undefined,
): { chain: string; index: number; rule: Rule }[] {
  const out: { chain: string; index: number; rule: Rule }[] = []
  if (!table) return out
  for (const c of table.chains) {
    if (!c.base) continue
    c.rules.forEach((r, index) => {
      if (isHookIntoOurs(table, r)) out.push({ chain: c.name, index, rule: r })
    })
  }
  return out
}

/**
 * The last answer for each ruleset, by identity: the enforcer's diff and the apply's plan
 * (applyScript) ask the same question of the same two objects, a pass over 100,000 set
 * elements each time. Both are never changed once made (readonly).
 */
const ANSWERED = new WeakMap<Ruleset, { desired: Desired; drifts: readonly Drift[] }>()

/**
 * Everything that differs between the desired state and the live ruleset, for our objects
 * only. Foreign objects are never reported here except where they stand before our hook.
 */
export function diff(desired: Desired, actual: Ruleset): Drift[] {
  const answered = ANSWERED.get(actual)
  if (answered?.desired === desired) return [...answered.drifts]
  const drifts = drifted(desired, actual)
  ANSWERED.set(actual, { desired, drifts })
  return [...drifts]
}

function drifted(desired: Desired, actual: Ruleset): Drift[] {
  if (desired.backend === 'nftables') {
    const want = desired.tables.find(isOurTable)
    const have = findTable(actual, 'nft', 'inet', NFT_TABLE)
    if (!want) return have ? [{ kind: 'table_unwanted', table: tableName(have) }] : []
    if (!have) return [{ kind: 'table_missing', table: tableName(want) }]
    return [
      ...diffTable(want, have),
      ...diffSets(want.sets, have.sets, () => true, !actual.elementsOmitted),
      ...diffCounters(want.counters ?? [], have.counters ?? []),
    ]
  }
  const out: Drift[] = []
  for (const family of ['ip', 'ip6'] as const) {
    const want = desired.tables.find((t) => t.family === family)
    const have = findTable(actual, desired.backend, family, 'filter')
    out.push(...diffTable(want, have))
    const found = findHooks(have)
    for (const h of desired.hooks.filter((x) => x.family === family)) {
      const table = `${family} filter`
      const mine = found.filter((f) => f.chain === h.chain)
      const first = mine[0]
      if (!first) {
        out.push({ kind: 'hook_missing', table, chain: h.chain })
        continue
      }
      if (mine.length > 1)
        out.push({ kind: 'hook_duplicated', table, chain: h.chain, count: mine.length })
      if (first.rule.comment !== h.rule.comment || ruleBody(first.rule) !== ruleBody(h.rule)) {
        out.push({
          kind: 'rule_changed',
          table,
          chain: h.chain,
          id: idOf(h.rule.comment) ?? '',
          before: describeRule(h.rule),
          after: describeRule(first.rule),
        })
      }
      if (first.index > 0) {
        const chain = have?.chains.find((c) => c.name === h.chain)
        const foreignBefore = (chain?.rules ?? []).slice(0, first.index).map(describeRule)
        out.push({
          kind: 'hook_not_first',
          table,
          chain: h.chain,
          index: first.index,
          foreignBefore,
        })
      }
    }
    for (const f of found) {
      if (!desired.hooks.some((h) => h.family === family && h.chain === f.chain)) {
        out.push({ kind: 'hook_unwanted', table: `${family} filter`, chain: f.chain })
      }
    }
  }
  out.push(...diffSets(desired.ipsets, actual.ipsets, isOurIpset, !actual.elementsOmitted))
  return out
}

/**
 * Whether a drift is tampering (spec sections 3 and 5). A hook that is not first is tampering
 * only where the mode keeps our hook first; unwanted leftovers are cleanup, not tampering.
 */
export function isTampering(d: Drift, desired: Pick<Desired, 'hookPosition'>): boolean {
  switch (d.kind) {
    case 'hook_not_first':
      return desired.hookPosition === 'first'
    case 'table_unwanted':
    case 'chain_unwanted':
    case 'hook_unwanted':
    case 'set_unwanted':
      return false
    default:
      return true
  }
}
