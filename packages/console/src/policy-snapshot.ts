import type {
  EnforcementMode,
  OsPlatform,
  PolicyDocs,
  PolicySnapshot,
  VisibilityLevel,
  Workload,
} from '@palisade/model'
import { policySnapshotOf } from '@palisade/model'
import type { Label } from './api.js'

/**
 * The API's policy documents (one policy version) and workloads, as the model's snapshot: what
 * the console needs to compute, exactly as the server does (the model reads the documents for
 * both), the rules that reach a workload and which workloads a provision changes. Pure.
 */

export type { PolicyDocs } from '@palisade/model'
export { draftHref, firewallSettingsOf } from '@palisade/model'

/** A workload as `GET /workloads` returns it (the fields the policy is made of). */
export interface WorkloadDoc {
  readonly href: string
  readonly name: string
  readonly os_type?: string
  readonly enforcement_mode: string
  readonly visibility_level: string
  readonly labels: readonly { href: string }[]
  readonly interfaces: readonly { name: string; address: string; cidr_block?: number | null }[]
  readonly agent?: { type?: string } | null
}

export function workloadOf(w: WorkloadDoc): Workload {
  return {
    href: w.href,
    name: w.name,
    agentType: w.agent?.type === 'endpoint' ? 'endpoint' : 'server',
    osPlatform: (w.os_type ?? 'linux') as OsPlatform,
    enforcementMode: w.enforcement_mode as EnforcementMode,
    // The vendor's newer name for full detail.
    visibilityLevel: (w.visibility_level === 'enhanced_data_collection'
      ? 'flow_full_detail'
      : w.visibility_level) as VisibilityLevel,
    labels: w.labels.map((l) => l.href),
    interfaces: w.interfaces.map((i) => ({
      name: i.name,
      address: i.address,
      ...(typeof i.cidr_block === 'number' && { cidrBlock: i.cidr_block }),
    })),
  }
}

export function snapshotOf(
  docs: PolicyDocs,
  labels: readonly Label[],
  workloads: readonly WorkloadDoc[],
): PolicySnapshot {
  return policySnapshotOf(0, docs, labels, workloads.map(workloadOf))
}
