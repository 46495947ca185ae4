/**
 * Where a label or a label group is used, as the vendor's `usage` flags (`?usage=true` on
 * labels and label groups). Pure: the caller hands in the policy objects, workloads and pairing
 * profiles; a use in the draft or the active policy counts.
 */
import type { Doc } from '../validate.js'

export interface UsageSources {
  readonly objects: readonly {
    readonly type: string
    readonly draft: Doc | null
    readonly active: Doc | null
  }[]
  /** The labels of each workload. */
  readonly workloads: readonly (readonly string[])[]
  /** The labels of each pairing profile. */
  readonly pairingProfiles: readonly (readonly string[])[]
}

/** The firewall settings' scope lists, and the usage flag each one sets. */
const SETTINGS_SCOPES: Record<string, string> = {
  static_policy_scopes: 'static_policy_scopes',
  containers_inherit_host_policy_scopes: 'containers_inherit_host_policy_scopes',
  blocked_connection_reject_scopes: 'blocked_connection_reject_scope',
  loopback_interfaces_in_policy_scopes: 'loopback_interfaces_in_policy_scopes',
  firewall_coexistence: 'firewall_coexistence_scope',
}

const mentions = (x: unknown, quoted: string) =>
  x !== undefined && x !== null && JSON.stringify(x).includes(quoted)

/** The usage flags of one href: every flag the clients read, true where it is used. */
export function usageOf(href: string, src: UsageSources): Record<string, boolean> {
  const q = JSON.stringify(href)
  const flags: Record<string, boolean> = {
    label_group: false,
    ruleset: false,
    rule: false,
    enforcement_boundary: false,
    static_policy_scopes: false,
    containers_inherit_host_policy_scopes: false,
    blocked_connection_reject_scope: false,
    loopback_interfaces_in_policy_scopes: false,
    firewall_coexistence_scope: false,
    pairing_profile: src.pairingProfiles.some((l) => l.includes(href)),
    workload: src.workloads.some((l) => l.includes(href)),
    virtual_server: false,
    virtual_service: false,
    permission: false,
    container_workload: false,
    container_workload_profile: false,
  }
  for (const o of src.objects) {
    for (const doc of [o.draft, o.active]) {
      if (!doc) continue
      if (o.type === 'label_groups') flags.label_group ||= mentions(doc, q)
      if (o.type === 'enforcement_boundaries') flags.enforcement_boundary ||= mentions(doc, q)
      if (o.type === 'virtual_services') flags.virtual_service ||= mentions(doc, q)
      if (o.type === 'rule_sets') {
        flags.ruleset ||= mentions(doc.scopes, q)
        flags.rule ||= mentions(doc.rules, q) || mentions(doc.deny_rules, q)
      }
      if (o.type === 'firewall_settings')
        for (const [field, flag] of Object.entries(SETTINGS_SCOPES))
          flags[flag] ||= mentions(doc[field], q)
    }
  }
  return flags
}
