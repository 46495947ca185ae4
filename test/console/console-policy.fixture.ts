/**
 * The console's own reading of the policy, run in Node against the same API: so a test can hold
 * what the console computes (a workload's rules, a provision's effect) against the server's.
 */
import type { PolicySnapshot } from '@palisade/model'
import type { Label } from '../../packages/console/src/api.js'
import type { PolicyDocs, WorkloadDoc } from '../../packages/console/src/policy-snapshot.js'
import { snapshotOf } from '../../packages/console/src/policy-snapshot.js'
import type { ConsoleBed } from './console.fixture.js'
import { O } from './console.fixture.js'

type Doc = Record<string, unknown>

export async function loadedDocs(bed: ConsoleBed, pv: 'draft' | 'active'): Promise<PolicyDocs> {
  const get = (type: string) => bed.ok<Doc[]>('GET', `${O}/sec_policy/${pv}/${type}`)
  const fs = await bed.api('GET', `${O}/sec_policy/${pv}/firewall_settings`)
  return {
    ruleSets: await get('rule_sets'),
    services: await get('services'),
    ipLists: await get('ip_lists'),
    labelGroups: await get('label_groups'),
    boundaries: await get('enforcement_boundaries'),
    virtualServices: await get('virtual_services'),
    firewallSettings: fs.status === 200 ? (fs.body as Doc) : undefined,
    serviceBindings: await bed.ok<Doc[]>('GET', `${O}/service_bindings`),
  }
}

/** The active policy as the console's snapshot of it. */
export async function loadedSnapshot(bed: ConsoleBed): Promise<PolicySnapshot> {
  return snapshotOf(
    await loadedDocs(bed, 'active'),
    await bed.ok<Label[]>('GET', `${O}/labels?max_results=10000`),
    await bed.ok<WorkloadDoc[]>('GET', `${O}/workloads?max_results=10000`),
  )
}
