import type { Desired } from './compile.js'
import type { Drift } from './diff.js'

export interface SetChange {
  readonly set: string
  readonly add: readonly string[]
  readonly remove: readonly string[]
}

/**
 * What an apply must do: nothing, only set elements (a peer change: O(changed) in the
 * kernel), or a full atomic replacement of our objects.
 */
export type Plan =
  | { readonly kind: 'none' }
  | { readonly kind: 'sets'; readonly changes: readonly SetChange[] }
  | { readonly kind: 'full' }

export function planApply(desired: Pick<Desired, 'hookPosition'>, drifts: readonly Drift[]): Plan {
  // A non-primary hook that others moved is tolerated: nothing to repair there.
  const relevant = drifts.filter(
    (d) => !(d.kind === 'hook_not_first' && desired.hookPosition === 'last'),
  )
  if (relevant.length === 0) return { kind: 'none' }
  const changes: SetChange[] = []
  for (const d of relevant) {
    if (d.kind !== 'set_elements') return { kind: 'full' }
    changes.push({ set: d.set, add: d.removed, remove: d.added })
  }
  return { kind: 'sets', changes }
}
