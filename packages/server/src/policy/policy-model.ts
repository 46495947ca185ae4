/**
 * Active (or draft) policy documents in the vendor API's shapes, converted to the pure model's
 * snapshot for host-policy computation (the model reads the documents: policy-docs.ts).
 */
import type { PolicySnapshot, Workload } from '@palisade/model'
import { policySnapshotOf } from '@palisade/model'
import type { Doc } from '../validate.js'
import type { PolicyType } from './types.js'

/** The firewall settings an org starts with, and the model's when none are stored. */
export const DEFAULT_FIREWALL_SETTINGS_DOC: Doc = {
  firewall_coexistence: [],
  blocked_connection_reject_scopes: [],
  loopback_interfaces_in_policy_scopes: [],
  static_policy_scopes: [],
  containers_inherit_host_policy_scopes: [],
  ike_authentication_type: 'psk',
}

export interface ActiveObjects {
  readonly [type: string]: readonly { href: string; doc: Doc }[]
}

/** Builds the model's snapshot from the policy objects, the bindings, labels and workloads. */
export function snapshotOf(
  version: number,
  active: ActiveObjects,
  labels: PolicySnapshot['labels'],
  workloads: readonly Workload[],
  serviceBindings: readonly Doc[],
): PolicySnapshot {
  const docs = (t: PolicyType) => (active[t] ?? []).map(({ href, doc }) => ({ ...doc, href }))
  return policySnapshotOf(
    version,
    {
      ruleSets: docs('rule_sets'),
      services: docs('services'),
      ipLists: docs('ip_lists'),
      labelGroups: docs('label_groups'),
      boundaries: docs('enforcement_boundaries'),
      virtualServices: docs('virtual_services'),
      firewallSettings: active.firewall_settings?.[0]?.doc ?? DEFAULT_FIREWALL_SETTINGS_DOC,
      serviceBindings,
    },
    labels,
    workloads,
  )
}
