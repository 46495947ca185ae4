import type { FirewallSettings } from './firewall-settings.js'
import type { PolicySnapshot } from './host-policy.js'
import type { Label, LabelGroup } from './labels.js'
import type {
  Actor,
  DenyRule,
  IpList,
  PortOverride,
  ResolveAs,
  Rule,
  RuleSet,
  RuleSide,
  ScopeRef,
  ServiceBinding,
  ServiceRef,
  VirtualService,
} from './rules.js'
import { RESOLVE_AS, RULE_SIDES } from './rules.js'
import type { Service, ServicePort } from './service.js'
import type { Workload } from './workload.js'

/**
 * Policy documents in the vendor API's shapes (one policy version, as `GET /sec_policy/{v}/...`
 * returns or the store holds them) read into the model's snapshot. The server and the console
 * read them here alike, so what the console previews is what the server computes. Pure.
 */

type Doc = Record<string, unknown>

/** The policy objects of one version, each with its href (rules too), and the bindings. */
export interface PolicyDocs {
  readonly ruleSets: readonly Doc[]
  readonly services: readonly Doc[]
  readonly ipLists: readonly Doc[]
  readonly labelGroups: readonly Doc[]
  readonly boundaries: readonly Doc[]
  readonly virtualServices: readonly Doc[]
  readonly firewallSettings: Doc | undefined
  /** Not versioned: the current bindings, whichever version the rest is. */
  readonly serviceBindings: readonly Doc[]
}

const isObj = (x: unknown): x is Doc => typeof x === 'object' && x !== null && !Array.isArray(x)
const list = (x: unknown): Doc[] => (Array.isArray(x) ? x.filter(isObj) : [])
const text = (x: unknown) => (typeof x === 'string' ? x : '')

/** Any version's href of a policy object, in the draft form that references are kept in. */
export const draftHref = (href: string) =>
  href.replace(/\/sec_policy\/(active|\d+)\//, '/sec_policy/draft/')
const hrefOf = (x: unknown) => (isObj(x) && typeof x.href === 'string' ? draftHref(x.href) : '')
const exclusionOf = (x: Doc) => (x.exclusion === true ? ({ exclusion: true } as const) : {})

export function actorOf(x: Doc): Actor | undefined {
  if (x.actors === 'ams') return { kind: 'ams' }
  if (x.label !== undefined) return { kind: 'label', href: hrefOf(x.label), ...exclusionOf(x) }
  if (x.label_group !== undefined)
    return { kind: 'label_group', href: hrefOf(x.label_group), ...exclusionOf(x) }
  for (const kind of ['workload', 'ip_list', 'virtual_service'] as const)
    if (x[kind] !== undefined) return { kind, href: hrefOf(x[kind]) }
  return undefined
}

/** A scope: its label and label-group entries, each maybe excluded. */
export const scopeOf = (x: unknown): ScopeRef[] =>
  list(x).flatMap((e): ScopeRef[] =>
    e.label_group !== undefined
      ? [{ labelGroup: hrefOf(e.label_group), ...exclusionOf(e) }]
      : e.label !== undefined
        ? [{ label: hrefOf(e.label), ...exclusionOf(e) }]
        : [],
  )

const scopesOf = (x: unknown) => (Array.isArray(x) ? x : []).map(scopeOf)

/** A service port as the API writes it; `port: -1` (a virtual service's "any port") is none. */
export const portOf = (o: Doc): ServicePort => ({
  proto: o.proto as number,
  ...(typeof o.port === 'number' && o.port >= 0 && { port: o.port }),
  ...(typeof o.to_port === 'number' && { toPort: o.to_port }),
  ...(typeof o.icmp_type === 'number' && { icmpType: o.icmp_type }),
  ...(typeof o.icmp_code === 'number' && { icmpCode: o.icmp_code }),
})

const strings = <T extends string>(x: unknown, values: readonly T[]): T[] =>
  (Array.isArray(x) ? x : []).filter((v): v is T => values.includes(v as T))

export function ruleOf(href: string, o: Doc): Rule {
  const actors = (x: unknown) =>
    list(x)
      .map(actorOf)
      .filter((a): a is Actor => a !== undefined)
  const resolveAs = isObj(o.resolve_labels_as)
    ? strings<ResolveAs>(o.resolve_labels_as.providers, RESOLVE_AS)
    : []
  const subnets = strings<RuleSide>(o.use_workload_subnets, RULE_SIDES)
  return {
    href: draftHref(href),
    enabled: o.enabled !== false,
    providers: actors(o.providers),
    consumers: actors(o.consumers),
    services: list(o.ingress_services).map((s): ServiceRef =>
      typeof s.href === 'string' ? { href: draftHref(s.href) } : portOf(s),
    ),
    unscopedConsumers: o.unscoped_consumers === true,
    ...(resolveAs.length > 0 &&
      resolveAs.join() !== 'workloads' && {
        providersResolveAs: resolveAs,
      }),
    ...(subnets.length > 0 && { useWorkloadSubnets: subnets }),
  }
}

export function firewallSettingsOf(fs: Doc | undefined): FirewallSettings {
  return {
    firewallCoexistence: list(fs?.firewall_coexistence).map((i) => ({
      scope: list(i.scope).map(hrefOf),
      illumioPrimary: i.illumio_primary === true,
      ...((i.workload_mode === 'enforced' || i.workload_mode === 'illuminated') && {
        workloadMode: i.workload_mode,
      }),
    })),
    blockedConnectionRejectScopes: scopesOf(fs?.blocked_connection_reject_scopes),
    loopbackInterfacesInPolicyScopes: scopesOf(fs?.loopback_interfaces_in_policy_scopes),
  }
}

export const labelGroupOf = (g: Doc): LabelGroup => ({
  href: draftHref(text(g.href)),
  key: text(g.key),
  name: text(g.name),
  labels: list(g.labels).map(hrefOf),
  subGroups: list(g.sub_groups).map(hrefOf),
})

export function virtualServiceOf(v: Doc): VirtualService {
  return {
    href: draftHref(text(v.href)),
    name: text(v.name),
    labels: list(v.labels).map((l) => text(l.href)),
    ports: list(v.service_ports).map(portOf),
    ...(isObj(v.service) && { service: hrefOf(v.service) }),
    ipOverrides: (Array.isArray(v.ip_overrides) ? v.ip_overrides : []).filter(
      (x): x is string => typeof x === 'string',
    ),
    // FQDN addresses cannot be filtered by address: they are not peers (docs/policy-semantics.md)
    serviceAddresses: list(v.service_addresses).flatMap((a) =>
      typeof a.ip === 'string'
        ? [{ ip: a.ip, ...(typeof a.port === 'number' && { port: a.port }) }]
        : [],
    ),
  }
}

export function serviceBindingOf(b: Doc): ServiceBinding {
  return {
    href: text(b.href),
    virtualService: hrefOf(b.virtual_service),
    workload: text(isObj(b.workload) ? b.workload.href : undefined),
    portOverrides: list(b.port_overrides).map((o): PortOverride => ({
      newPort: o.new_port as number,
      ...(typeof o.port === 'number' && { port: o.port }),
      ...(typeof o.proto === 'number' && { proto: o.proto }),
      ...(typeof o.new_to_port === 'number' && { newToPort: o.new_to_port }),
    })),
  }
}

/** A policy version's documents, the labels and these workloads, as the model's snapshot. */
export function policySnapshotOf(
  version: number,
  docs: PolicyDocs,
  labels: readonly Label[],
  workloads: readonly Workload[],
): PolicySnapshot {
  const ruleSets = docs.ruleSets.map((rs): RuleSet => ({
    href: draftHref(text(rs.href)),
    name: text(rs.name),
    enabled: rs.enabled !== false,
    scopes: scopesOf(rs.scopes),
    rules: list(rs.rules).map((r) => ruleOf(text(r.href), r)),
    denyRules: list(rs.deny_rules).map((r): DenyRule => ({
      ...ruleOf(text(r.href), r),
      override: r.override === true,
    })),
  }))
  // Enforcement boundaries are the older form of deny rules: one global rule set of them.
  const boundaries = docs.boundaries.filter((b) => b.enabled !== false)
  if (boundaries.length > 0)
    ruleSets.push({
      href: 'enforcement_boundaries',
      name: 'enforcement boundaries',
      enabled: true,
      scopes: [],
      rules: [],
      denyRules: boundaries.map((b) => ({ ...ruleOf(text(b.href), b), override: false })),
    })
  return {
    version,
    labels: labels.map((l) => ({ href: l.href, key: l.key, value: l.value })),
    labelGroups: docs.labelGroups.map(labelGroupOf),
    workloads,
    services: docs.services.map((s): Service => ({
      href: draftHref(text(s.href)),
      name: text(s.name),
      ports: list(s.service_ports).map(portOf),
    })),
    ipLists: docs.ipLists.map((l): IpList => ({
      href: draftHref(text(l.href)),
      name: text(l.name),
      ranges: list(l.ip_ranges).map((r) => ({
        from: text(r.from_ip),
        ...(typeof r.to_ip === 'string' && { to: r.to_ip }),
        ...(r.exclusion === true && { exclusion: true }),
      })),
    })),
    ruleSets,
    firewallSettings: firewallSettingsOf(docs.firewallSettings),
    virtualServices: docs.virtualServices.map(virtualServiceOf),
    serviceBindings: docs.serviceBindings.map(serviceBindingOf),
  }
}
