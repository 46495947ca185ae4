/**
 * What a provision does, decided without the store: which objects have pending changes, which
 * of them a provision takes (all, or the `change_subset` asked for), whether the active policy
 * it makes refers only to objects that would be active, and that policy with its counts.
 */
import { invalid, invalidOne } from '../errors.js'
import { draftObjectHref } from '../hrefs.js'
import type { PolicyType } from '../policy/types.js'
import { SINGULAR } from '../policy/types.js'
import type { PolicyObjectRow } from '../stores/policy-objects.js'
import type { VersionSnapshot } from '../stores/versions.js'
import type { Doc } from '../validate.js'
import { sameContent } from './content-compare.js'
import type { Dependency, PolicyEntry } from './policy-closure.js'
import { dependenciesOf, missingReferences } from './policy-closure.js'

export type PendingChange = 'create' | 'update' | 'delete'

/** What a provision would do to an object; null when its draft is its active copy. */
export function pendingChange(
  r: Pick<PolicyObjectRow, 'draft' | 'active' | 'draft_deleted'>,
): PendingChange | null {
  if (r.draft_deleted) return 'delete'
  if (r.active === null) return 'create'
  return sameContent(r.draft, r.active) ? null : 'update'
}

/** An object's change as the audit log records it. */
export interface ObjectChange {
  readonly resource: string
  readonly href: string
  readonly change: PendingChange
  readonly before: Doc | null
  readonly after: Doc | null | undefined
}

export interface ProvisionPlan {
  /** The objects provisioned, in the store's order. */
  readonly chosen: readonly PolicyObjectRow[]
  /** The whole active policy after the provision. */
  readonly snapshot: VersionSnapshot
  /** How many objects of each type the provision changes. */
  readonly counts: Record<string, number>
  readonly changes: readonly ObjectChange[]
}

/** What active becomes: provisioned rows take their draft, the rest keep their active copy. */
function activeAfterProvision(
  rows: readonly PolicyObjectRow[],
  chosen: ReadonlySet<PolicyObjectRow>,
): PolicyEntry[] {
  return rows.flatMap((r) => {
    const doc = chosen.has(r) ? (r.draft_deleted ? null : r.draft) : r.active
    return doc === null ? [] : [{ type: r.type, id: r.id, doc }]
  })
}

/**
 * What a provision of the pending changes named by `wanted` (draft hrefs) must also take (POST
 * /sec_policy/draft/dependencies with `operation: commit`).
 */
export function provisionDependencies(
  org: number,
  rows: readonly PolicyObjectRow[],
  wanted: ReadonlySet<string>,
): Dependency[] {
  const hrefOf = (r: PolicyObjectRow) => draftObjectHref(org, r.type, r.id)
  const chosen = rows.filter((r) => pendingChange(r) !== null && wanted.has(hrefOf(r)))
  const missing = missingReferences(org, activeAfterProvision(rows, new Set(chosen)))
  return dependenciesOf(missing, (h) => wanted.has(h))
}

/** How many missing references a refusal lists at most. */
export const MAX_LISTED = 20

/**
 * Plans the provision of the org's pending changes: all of them, or those whose draft hrefs are
 * `wanted`. Throws the 406 a provision that cannot be made gets: a wanted object with nothing
 * pending, nothing to provision, or an active policy referring to objects it would not hold.
 */
export function planProvision(
  org: number,
  rows: readonly PolicyObjectRow[],
  wanted: ReadonlySet<string>,
): ProvisionPlan {
  const hrefOf = (r: Pick<PolicyObjectRow, 'type' | 'id'>) => draftObjectHref(org, r.type, r.id)
  const pending = rows.filter((r) => pendingChange(r) !== null)
  const chosen = wanted.size === 0 ? pending : pending.filter((r) => wanted.has(hrefOf(r)))
  const unknown = [...wanted].filter((h) => !pending.some((r) => hrefOf(r) === h))
  if (unknown.length > 0)
    throw invalidOne('not_pending', `no pending change for ${unknown.join(', ')}`)
  if (chosen.length === 0)
    throw invalidOne('nothing_to_provision', 'there are no pending changes to provision')
  const activeAfter = activeAfterProvision(rows, new Set(chosen))
  const missing = missingReferences(org, activeAfter)
  if (missing.length > 0)
    throw invalid(
      missing.slice(0, MAX_LISTED).map((m) => ({
        token: 'provision_dependency',
        message: `${m.by} needs ${m.needs}, which would not be active; provision them together`,
      })),
    )
  const snapshot: Partial<Record<PolicyType, { id: string; doc: Doc }[]>> = {}
  for (const o of activeAfter) (snapshot[o.type] ??= []).push({ id: o.id, doc: o.doc })
  const counts: Record<string, number> = {}
  for (const r of chosen) counts[r.type] = (counts[r.type] ?? 0) + 1
  return {
    chosen,
    snapshot,
    counts,
    changes: chosen.map((r) => ({
      resource: SINGULAR[r.type],
      href: hrefOf(r),
      change: pendingChange(r) ?? 'update',
      before: r.active,
      after: r.draft_deleted ? undefined : r.draft,
    })),
  }
}
