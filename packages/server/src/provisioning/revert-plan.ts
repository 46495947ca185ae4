/**
 * What reverting pending changes does, decided without the store: each reverted object's draft
 * goes back to its active copy (a never-provisioned one is dropped, a pending delete is
 * cancelled), and the draft left must still be whole. Also the draft a restore of an earlier
 * version makes. Pure.
 */
import { invalid, invalidOne } from '../errors.js'
import { draftObjectHref } from '../hrefs.js'
import { SINGULAR } from '../policy/types.js'
import type { PolicyObjectRow } from '../stores/policy-objects.js'
import type { VersionSnapshot } from '../stores/versions.js'
import type { Doc } from '../validate.js'
import { sameContent } from './content-compare.js'
import type { Dependency, PolicyEntry } from './policy-closure.js'
import { dependenciesOf, missingReferences } from './policy-closure.js'
import type { ObjectChange } from './provision-plan.js'
import { MAX_LISTED, pendingChange } from './provision-plan.js'

/** What a revert does to one object's row. */
export type RowEdit =
  | { readonly kind: 'drop'; readonly row: PolicyObjectRow }
  | { readonly kind: 'set_draft'; readonly row: PolicyObjectRow; readonly draft: Doc }
  | {
      readonly kind: 'insert'
      readonly type: PolicyObjectRow['type']
      readonly id: string
      readonly draft: Doc
    }
  | { readonly kind: 'mark_deleted'; readonly row: PolicyObjectRow }

export interface RevertPlan {
  readonly edits: readonly RowEdit[]
  /** Each object's change as the audit log records it (its draft before, its draft after). */
  readonly changes: readonly ObjectChange[]
}

/** The draft policy: each object's draft, but pending deletes. */
const draftOf = (r: PolicyObjectRow) => (r.draft_deleted ? null : (r.draft ?? r.active))

/** The draft after these rows are reverted. */
function draftAfterRevert(
  rows: readonly PolicyObjectRow[],
  reverted: ReadonlySet<PolicyObjectRow>,
): PolicyEntry[] {
  return rows.flatMap((r) => {
    const doc = reverted.has(r) ? r.active : draftOf(r)
    return doc === null ? [] : [{ type: r.type, id: r.id, doc }]
  })
}

/** The pending rows named by `wanted` (draft hrefs), or all of them; 406 for one not pending. */
function pendingNamed(
  org: number,
  rows: readonly PolicyObjectRow[],
  wanted: ReadonlySet<string> | 'all',
): PolicyObjectRow[] {
  const hrefOf = (r: PolicyObjectRow) => draftObjectHref(org, r.type, r.id)
  const pending = rows.filter((r) => pendingChange(r) !== null)
  if (wanted === 'all') return pending
  const unknown = [...wanted].filter((h) => !pending.some((r) => hrefOf(r) === h))
  if (unknown.length > 0)
    throw invalidOne(
      'not_pending',
      `no pending change for ${unknown.join(', ')}: only pending changes can be reverted`,
    )
  return pending.filter((r) => wanted.has(hrefOf(r)))
}

/**
 * Plans the revert of the pending changes named by `wanted` (draft hrefs), or of all of them.
 * Throws a 406 when one named has nothing pending, or when the draft left would refer to an
 * object the revert takes away (naming both, and what to add to the subset).
 */
export function planRevert(
  org: number,
  rows: readonly PolicyObjectRow[],
  wanted: ReadonlySet<string> | 'all',
): RevertPlan {
  const hrefOf = (r: PolicyObjectRow) => draftObjectHref(org, r.type, r.id)
  const reverted = pendingNamed(org, rows, wanted)
  if (wanted !== 'all') {
    const missing = missingReferences(org, draftAfterRevert(rows, new Set(reverted)))
    const deps = dependenciesOf(missing, (h) => wanted.has(h))
    if (deps.length > 0)
      throw invalid(
        deps.slice(0, MAX_LISTED).map((d) => ({
          token: 'revert_dependency',
          message: `${d.required_by.join(', ')} cannot be reverted without ${d.dependency}, which the draft would still need (or lose); add ${d.dependency} to change_subset`,
        })),
      )
  }
  return {
    edits: reverted.map((row) =>
      row.active === null ? { kind: 'drop', row } : { kind: 'set_draft', row, draft: row.active },
    ),
    changes: reverted.map((r) => ({
      resource: SINGULAR[r.type],
      href: hrefOf(r),
      change: r.active === null ? 'delete' : r.draft_deleted ? 'create' : 'update',
      before: draftOf(r),
      after: r.active,
    })),
  }
}

/**
 * What a revert of the pending changes named by `wanted` must also take (POST
 * /sec_policy/draft/dependencies with `operation: revert`).
 */
export function revertDependencies(
  org: number,
  rows: readonly PolicyObjectRow[],
  wanted: ReadonlySet<string>,
): Dependency[] {
  const reverted = pendingNamed(org, rows, wanted)
  const missing = missingReferences(org, draftAfterRevert(rows, new Set(reverted)))
  return dependenciesOf(missing, (h) => wanted.has(h))
}

/**
 * The draft a restore of an earlier version makes: every object as that version held it, the
 * objects it did not hold deleted (pending, for those provisioned). Throws a 406 when the draft
 * has pending changes (a restore would bury them): revert those first.
 */
export function planRestore(
  org: number,
  rows: readonly PolicyObjectRow[],
  snapshot: VersionSnapshot,
  version: number,
): RevertPlan {
  const pending = rows.filter((r) => pendingChange(r) !== null)
  if (pending.length > 0)
    throw invalidOne(
      'pending_changes',
      `the draft has ${pending.length} pending change(s) (${pending
        .slice(0, 3)
        .map((r) => draftObjectHref(org, r.type, r.id))
        .join(
          ', ',
        )}${pending.length > 3 ? ', …' : ''}); provision them or revert them (DELETE /orgs/${org}/sec_policy/pending) before restoring version ${version}`,
    )
  const key = (type: string, id: string) => `${type}/${id}`
  const byKey = new Map(rows.map((r) => [key(r.type, r.id), r]))
  const kept = new Set<string>()
  const edits: RowEdit[] = []
  const changes: ObjectChange[] = []
  for (const [type, objects] of Object.entries(snapshot) as [
    PolicyObjectRow['type'],
    { id: string; doc: Doc }[],
  ][]) {
    for (const o of objects) {
      kept.add(key(type, o.id))
      const row = byKey.get(key(type, o.id))
      const href = draftObjectHref(org, type, o.id)
      if (row && sameContent(row.draft, o.doc)) continue
      edits.push(
        row
          ? { kind: 'set_draft', row, draft: o.doc }
          : { kind: 'insert', type, id: o.id, draft: o.doc },
      )
      changes.push({
        resource: SINGULAR[type],
        href,
        change: row ? 'update' : 'create',
        before: row?.draft ?? null,
        after: o.doc,
      })
    }
  }
  for (const row of rows) {
    // The firewall settings are one per org, in every version.
    if (kept.has(key(row.type, row.id)) || row.type === 'firewall_settings') continue
    edits.push({ kind: 'mark_deleted', row })
    changes.push({
      resource: SINGULAR[row.type],
      href: draftObjectHref(org, row.type, row.id),
      change: 'delete',
      before: row.draft,
      after: undefined,
    })
  }
  return { edits, changes }
}
