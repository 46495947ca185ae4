import type { Desired } from './ours.js'
import type { Drift, DriftKind } from './diff.js'

export interface SetChange {
  readonly set: string
  readonly add: readonly string[]
  readonly remove: readonly string[]
}

/**
 * What an apply must do, cheapest first: nothing; only set elements (a peer change: O(changed)
 * in the kernel); only rules, chains and hooks while every set is intact (a tampered chain is
 * repaired without reloading large sets); or a full atomic replacement of our objects.
 */
export type Plan =
  | { readonly kind: 'none' }
  | { readonly kind: 'sets'; readonly changes: readonly SetChange[] }
  | {
      readonly kind: 'rules'
      readonly chains: readonly string[]
      /**
       * The tables that drifted (`ip filter`, `ip6 filter`, `inet palisade`): on iptables, where
       * each family is its own transaction, the others are neither written nor read back.
       */
      readonly tables: readonly string[]
    }
  | { readonly kind: 'full' }

/** Drifts confined to rules, chains and hooks: sets are untouched. */
const RULE_DRIFTS: ReadonlySet<DriftKind> = new Set([
  'rule_added',
  'rule_removed',
  'rule_changed',
  'rule_moved',
  'chain_missing',
  'chain_changed',
  'chain_unwanted',
  'hook_missing',
  'hook_duplicated',
  'hook_not_first',
  'hook_unwanted',
])

export function planApply(desired: Pick<Desired, 'hookPosition'>, drifts: readonly Drift[]): Plan {
  // A non-primary hook that others moved is tolerated: nothing to repair there.
  const relevant = drifts.filter(
    (d) => !(d.kind === 'hook_not_first' && desired.hookPosition === 'last'),
  )
  if (relevant.length === 0) return { kind: 'none' }
  if (relevant.every((d) => d.kind === 'set_elements')) {
    return {
      kind: 'sets',
      changes: relevant.map((d) => ({ set: d.set, add: d.removed, remove: d.added })),
    }
  }
  if (relevant.every((d) => RULE_DRIFTS.has(d.kind))) {
    const chains = new Set(relevant.flatMap((d) => ('chain' in d ? [d.chain] : [])))
    const tables = new Set(relevant.flatMap((d) => ('table' in d ? [d.table] : [])))
    return { kind: 'rules', chains: [...chains].sort(), tables: [...tables].sort() }
  }
  return { kind: 'full' }
}
