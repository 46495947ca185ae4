import type { ScopeRef } from './rules.js'

export const COEXISTENCE_MODES = [
  'exclusive',
  'coexistence_primary',
  'coexistence_non_primary',
] as const
export type CoexistenceMode = (typeof COEXISTENCE_MODES)[number]

export const COEXISTENCE_WORKLOAD_MODES = ['enforced', 'illuminated'] as const
export type CoexistenceWorkloadMode = (typeof COEXISTENCE_WORKLOAD_MODES)[number]

export interface FirewallCoexistenceItem {
  /** Label hrefs, ANDed; empty matches every workload. */
  readonly scope: readonly string[]
  readonly illumioPrimary: boolean
  /** Absent: every enforcement mode ("All"). */
  readonly workloadMode?: CoexistenceWorkloadMode
}

export interface FirewallSettings {
  readonly firewallCoexistence: readonly FirewallCoexistenceItem[]
  /** Scopes whose blocked connections are rejected instead of dropped. */
  readonly blockedConnectionRejectScopes: readonly (readonly ScopeRef[])[]
  /** Scopes whose loopback traffic goes through policy instead of being allowed. */
  readonly loopbackInterfacesInPolicyScopes: readonly (readonly ScopeRef[])[]
}

export const DEFAULT_FIREWALL_SETTINGS: FirewallSettings = Object.freeze({
  firewallCoexistence: [],
  blockedConnectionRejectScopes: [],
  loopbackInterfacesInPolicyScopes: [],
})
