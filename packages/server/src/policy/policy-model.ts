/**
 * Active (or draft) policy documents in the vendor API's shapes, converted to the pure model's
 * snapshot for host-policy computation.
 */
import type {
  Actor,
  DenyRule,
  FirewallSettings,
  IpList,
  LabelGroup,
  PolicySnapshot,
  Rule,
  RuleSet,
  ScopeRef,
  Service,
  ServicePort,
  ServiceRef,
  Workload,
} from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
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

const text = (x: unknown): string => (typeof x === 'string' ? x : '')
const hrefOf = (x: unknown): string =>
  isObj(x) && typeof x.href === 'string' ? draftHref(x.href) : ''

function actorOf(x: unknown): Actor | undefined {
  if (!isObj(x)) return undefined
  if (x.actors === 'ams') return { kind: 'ams' }
  for (const kind of ['label', 'label_group', 'workload', 'ip_list'] as const)
    if (x[kind] !== undefined) return { kind, href: hrefOf(x[kind]) }
  return undefined
}

const portOf = (o: Doc): ServicePort => ({
  proto: o.proto as number,
  ...(typeof o.port === 'number' && { port: o.port }),
  ...(typeof o.to_port === 'number' && { toPort: o.to_port }),
  ...(typeof o.icmp_type === 'number' && { icmpType: o.icmp_type }),
  ...(typeof o.icmp_code === 'number' && { icmpCode: o.icmp_code }),
})

function ruleOf(href: string, o: Doc): Rule {
  return {
    href,
    enabled: o.enabled !== false,
    providers: ((o.providers as unknown[]) ?? [])
      .map(actorOf)
      .filter((a): a is Actor => a !== undefined),
    consumers: ((o.consumers as unknown[]) ?? [])
      .map(actorOf)
      .filter((a): a is Actor => a !== undefined),
    services: ((o.ingress_services as Doc[]) ?? []).map((s): ServiceRef =>
      typeof s.href === 'string' ? { href: draftHref(s.href) } : portOf(s),
    ),
    unscopedConsumers: o.unscoped_consumers === true,
  }
}

export interface ActiveObjects {
  readonly [type: string]: readonly { href: string; doc: Doc }[]
}

/** Builds the model's snapshot from the active policy objects, labels and workloads. */
export function snapshotOf(
  version: number,
  active: ActiveObjects,
  labels: PolicySnapshot['labels'],
  workloads: readonly Workload[],
): PolicySnapshot {
  const list = (t: PolicyType) => active[t] ?? []
  const ruleSets: RuleSet[] = list('rule_sets').map(({ href, doc }) => ({
    href,
    name: text(doc.name),
    enabled: doc.enabled !== false,
    scopes: ((doc.scopes as unknown[][]) ?? []).map((s) =>
      s.flatMap((x): ScopeRef[] =>
        isObj(x) && x.label_group
          ? [{ labelGroup: hrefOf(x.label_group) }]
          : isObj(x) && x.label
            ? [{ label: hrefOf(x.label) }]
            : [],
      ),
    ),
    rules: ((doc.rules as Doc[]) ?? []).map((r) => ruleOf(String(r.href), r)),
    denyRules: ((doc.deny_rules as Doc[]) ?? []).map((r): DenyRule => ({
      ...ruleOf(String(r.href), r),
      override: r.override === true,
    })),
  }))
  // Enforcement boundaries are the older form of deny rules: one global rule set of them.
  const boundaries = list('enforcement_boundaries').filter(({ doc }) => doc.enabled !== false)
  if (boundaries.length > 0) {
    ruleSets.push({
      href: 'enforcement_boundaries',
      name: 'enforcement boundaries',
      enabled: true,
      scopes: [],
      rules: [],
      denyRules: boundaries.map(({ href, doc }) => ({ ...ruleOf(href, doc), override: false })),
    })
  }
  const fs = list('firewall_settings')[0]?.doc ?? DEFAULT_FIREWALL_SETTINGS_DOC
  const scopes = (x: unknown) =>
    ((x as unknown[][]) ?? []).map((s) =>
      s.map((e) => (isObj(e) && e.label ? hrefOf(e.label) : '')).filter(Boolean),
    )
  const firewallSettings: FirewallSettings = {
    firewallCoexistence: ((fs.firewall_coexistence as Doc[]) ?? []).map((i) => ({
      scope: ((i.scope as unknown[]) ?? []).map(hrefOf),
      illumioPrimary: i.illumio_primary === true,
      ...(typeof i.workload_mode === 'string' && {
        workloadMode: i.workload_mode as 'enforced' | 'illuminated',
      }),
    })),
    blockedConnectionRejectScopes: scopes(fs.blocked_connection_reject_scopes),
    loopbackInterfacesInPolicyScopes: scopes(fs.loopback_interfaces_in_policy_scopes),
  }
  return {
    version,
    labels,
    labelGroups: list('label_groups').map(({ href, doc }): LabelGroup => ({
      href,
      key: text(doc.key),
      name: text(doc.name),
      labels: ((doc.labels as unknown[]) ?? []).map(hrefOf),
      subGroups: ((doc.sub_groups as unknown[]) ?? []).map(hrefOf),
    })),
    workloads,
    services: list('services').map(({ href, doc }): Service => ({
      href,
      name: text(doc.name),
      ports: ((doc.service_ports as Doc[]) ?? []).map(portOf),
    })),
    ipLists: list('ip_lists').map(({ href, doc }): IpList => ({
      href,
      name: text(doc.name),
      ranges: ((doc.ip_ranges as Doc[]) ?? []).map((r) => ({
        from: String(r.from_ip),
        ...(typeof r.to_ip === 'string' && { to: r.to_ip }),
        ...(r.exclusion === true && { exclusion: true }),
      })),
    })),
    ruleSets,
    firewallSettings,
  }
}
