import { notFound } from '../errors.js'
import { policyVersionHref } from '../hrefs.js'
import type { PendingChange } from '../provisioning/provision-plan.js'
import { pendingChange } from '../provisioning/provision-plan.js'
import type { Db } from '../stores/db.js'
import { policyObjects } from '../stores/policy-objects.js'
import { versionSnapshot } from '../stores/versions.js'
import type { Doc } from '../validate.js'
import type { PolicyType } from './types.js'

/** Numbered ids in their order; UUIDs (virtual services) by their text, a stable order. */
const byId = (a: { id: string }, b: { id: string }) =>
  Number(a.id) - Number(b.id) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/**
 * The objects of one type as a policy version holds them: the draft (with each object's pending
 * change), the active policy, or a provisioned version by number; 404 for any other version.
 */
export async function objectsInVersion(
  db: Db,
  org: number,
  pv: string,
  type: PolicyType,
): Promise<{ id: string; doc: Doc; update?: PendingChange | null }[]> {
  if (pv === 'draft' || pv === 'active') {
    const rows = await policyObjects(db, org, type)
    return rows
      .filter((r) => (pv === 'draft' ? r.draft !== null : r.active !== null))
      .map((r) => ({
        id: r.id,
        doc: (pv === 'draft' ? (r.draft ?? r.active) : r.active) ?? {},
        update: pendingChange(r),
      }))
      .sort(byId)
  }
  if (!/^\d+$/.test(pv)) throw notFound(policyVersionHref(org, pv))
  const snapshot = await versionSnapshot(db, org, Number(pv))
  if (!snapshot) throw notFound(policyVersionHref(org, pv))
  return snapshot[type] ?? []
}
