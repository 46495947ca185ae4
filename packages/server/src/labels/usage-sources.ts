import type { Db } from '../stores/db.js'
import { listProfiles } from '../stores/pairing.js'
import { policyObjects } from '../stores/policy-objects.js'
import { listWorkloads } from '../stores/workloads.js'
import type { UsageSources } from './label-usage.js'

/** What `usageOf` looks through: the org's policy objects, workloads and pairing profiles. */
export async function usageSources(db: Db, org: number): Promise<UsageSources> {
  const [objects, workloads, profiles] = await Promise.all([
    policyObjects(db, org),
    listWorkloads(db, org, 'any'),
    listProfiles(db, org),
  ])
  return {
    objects,
    workloads: workloads.map((w) => w.labels),
    pairingProfiles: profiles.map((p) => p.labels),
  }
}
