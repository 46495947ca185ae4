/**
 * The policy as the model computes host policies from it: the active policy objects (or the
 * draft ones), the labels, the newest version and the workloads, as one snapshot.
 */
import type { PolicySnapshot, Workload } from '@palisade/model'
import { draftObjectHref } from '../hrefs.js'
import { bindingDocs } from '../policy/binding-view.js'
import { withRuleHrefs } from '../policy/object-view.js'
import type { ActiveObjects } from '../policy/policy-model.js'
import { snapshotOf } from '../policy/policy-model.js'
import type { Db } from '../stores/db.js'
import { labelsByHref } from '../stores/labels.js'
import { policyOn } from '../stores/policy-objects.js'
import { serviceBindings } from '../stores/service-bindings.js'
import { latestVersion } from '../stores/versions.js'
import { workloadModels } from '../stores/workloads.js'
import type { Doc } from '../validate.js'

/** The active policy (what agents enforce), or the draft (what provisioning would make it). */
export async function policySnapshot(
  db: Db,
  org: number,
  side: 'active' | 'draft' = 'active',
): Promise<PolicySnapshot> {
  return snapshotWith(db, org, side, await workloadModels(db, org))
}

/** The active firewall settings, without reading any workload. */
export async function firewallSettings(
  db: Db,
  org: number,
): Promise<PolicySnapshot['firewallSettings']> {
  return (await snapshotWith(db, org, 'active', [])).firewallSettings
}

/** One side of the policy with these workloads (the caller has read them already). */
export async function snapshotWith(
  db: Db,
  org: number,
  side: 'active' | 'draft',
  workloads: readonly Workload[],
): Promise<PolicySnapshot> {
  const objects: Record<string, { href: string; doc: Doc }[]> = {}
  for (const o of await policyOn(db, org, side)) {
    // Rules are stored with ids; the model names them by href.
    const href = draftObjectHref(org, o.type, o.id)
    ;(objects[o.type] ??= []).push({
      href,
      doc: o.type === 'rule_sets' ? withRuleHrefs(href, o.doc) : o.doc,
    })
  }
  const labels = await labelsByHref(db, org)
  const version = await latestVersion(db, org)
  return snapshotOf(
    version,
    objects satisfies ActiveObjects,
    [...labels].map(([href, l]) => ({ href, ...l })),
    workloads,
    bindingDocs(org, await serviceBindings(db, org)),
  )
}
