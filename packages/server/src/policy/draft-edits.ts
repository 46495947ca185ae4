/**
 * What every edit of the draft policy shares: only the draft changes, an edit names an object
 * the draft holds, and references are checked against what exists.
 */
import { labelGroupOf, labelIndexOf } from '@palisade/model'
import type { FastifyRequest } from 'fastify'
import { now } from '../clock.js'
import { invalidOne, notFound } from '../errors.js'
import { draftObjectHref, workloadHref } from '../hrefs.js'
import { userActor } from '../http.js'
import type { Db } from '../stores/db.js'
import { labelsByHref } from '../stores/labels.js'
import type { PolicyObjectRow } from '../stores/policy-objects.js'
import { findObject, objectKeys, policyObjects } from '../stores/policy-objects.js'
import { workloadIds } from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import type { RefIndex } from './rule-checks.js'
import type { PolicyType } from './types.js'

/** Refuses a write to any policy version but the draft. */
export function draftOnly(req: FastifyRequest): void {
  const pv = (req.params as { pv?: string }).pv
  if (pv !== undefined && pv !== 'draft')
    throw invalidOne(
      'policy_version_read_only',
      `only the draft policy can change, not ${pv}; write to /sec_policy/draft/...`,
    )
}

/** An object the draft holds (not deleted there), with its draft; 404 otherwise. */
export async function draftObject(
  db: Db,
  org: number,
  type: PolicyType,
  id: string,
): Promise<PolicyObjectRow & { draft: Doc }> {
  const r = await findObject(db, org, type, id)
  if (!r || r.draft_deleted || r.draft === null) throw notFound(draftObjectHref(org, type, id))
  return { ...r, draft: r.draft }
}

/** What references may name: the org's labels, draft objects and workloads. */
export async function refIndex(db: Db, org: number): Promise<RefIndex> {
  const labels = await labelsByHref(db, org)
  const objects = await objectKeys(db, org)
  const workloads = await workloadIds(db, org)
  const groups = (await policyObjects(db, org, 'label_groups')).filter(
    (g) => !g.draft_deleted && g.draft !== null,
  )
  return {
    labels,
    drafts: new Set(
      objects.filter((o) => !o.draft_deleted).map((o) => draftObjectHref(org, o.type, o.id)),
    ),
    workloads: new Set(workloads.map((id) => workloadHref(org, id))),
    // what label references can match: the labels, and the label groups as the draft has them
    labelTypes: labelIndexOf(
      [...labels].map(([href, l]) => ({ href, ...l })),
      groups.map((g) => labelGroupOf({ ...g.draft, href: draftObjectHref(org, g.type, g.id) })),
    ),
  }
}

/** A draft after an edit: the old fields, the new ones, and who changed it when. */
export const edited = (before: Doc, fields: Doc, req: FastifyRequest): Doc => ({
  ...before,
  ...fields,
  updated_at: now(),
  updated_by: userActor(req).user,
})
