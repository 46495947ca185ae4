/**
 * What a new or edited coexistence scope means next to the others: an identical one is refused,
 * one that says the opposite about the same workloads is pointed out. Pure.
 */

export interface ScopeItem {
  readonly scope: readonly { href: string }[]
  readonly illumio_primary: boolean
  readonly workload_mode?: 'enforced' | 'illuminated'
}

export interface ScopeConflict {
  /** 1-based, as the page numbers the scopes. */
  readonly number: number
  readonly kind: 'duplicate' | 'contradiction'
}

const key = (i: ScopeItem) =>
  `${i.scope
    .map((s) => s.href)
    .sort()
    .join(',')}|${i.workload_mode ?? ''}`

/** The other scopes (all but `index`) with the same labels and enforcement as `item`. */
export function scopeConflicts(
  items: readonly ScopeItem[],
  item: ScopeItem,
  index: number | null,
): ScopeConflict[] {
  return items.flatMap((other, i) =>
    i === index || key(other) !== key(item)
      ? []
      : [
          {
            number: i + 1,
            kind:
              other.illumio_primary === item.illumio_primary
                ? ('duplicate' as const)
                : ('contradiction' as const),
          },
        ],
  )
}
