import type {
  Actor,
  EnforcementMode,
  FirewallSettings,
  OsPlatform,
  PolicySnapshot,
  Rule,
  RuleSet,
  ScopeRef,
  ServicePort,
  ServiceRef,
  VisibilityLevel,
  Workload,
} from '@palisade/model'
import type { Label } from './api.js'

/**
 * The API's policy documents (one policy version) and workloads, as the model's snapshot: what
 * the console needs to compute, exactly as the server does, the rules that reach a workload and
 * which workloads a provision changes. Pure.
 */

type Doc = Record<string, unknown>

/** The policy objects of one version, as `GET /sec_policy/{draft|active}/...` returns them. */
export interface PolicyDocs {
  readonly ruleSets: readonly Doc[]
  readonly services: readonly Doc[]
  readonly ipLists: readonly Doc[]
  readonly labelGroups: readonly Doc[]
  readonly boundaries: readonly Doc[]
  readonly firewallSettings: Doc | undefined
}

/** A workload as `GET /workloads` returns it (the fields the policy is made of). */
export interface WorkloadDoc {
  readonly href: string
  readonly name: string
  readonly os_type?: string
  readonly enforcement_mode: string
  readonly visibility_level: string
  readonly labels: readonly { href: string }[]
  readonly interfaces: readonly { name: string; address: string }[]
  readonly agent?: { type?: string } | null
}

const isObj = (x: unknown): x is Doc => typeof x === 'object' && x !== null && !Array.isArray(x)
const list = (x: unknown): Doc[] => (Array.isArray(x) ? x.filter(isObj) : [])
const text = (x: unknown) => (typeof x === 'string' ? x : '')

/** Any version's href of a policy object, in the draft form that references use. */
export const draftHref = (href: string) =>
  href.replace(/\/sec_policy\/(active|\d+)\//, '/sec_policy/draft/')
const hrefOf = (x: unknown) => (isObj(x) && typeof x.href === 'string' ? draftHref(x.href) : '')

function actorOf(x: Doc): Actor | undefined {
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
  const actors = (x: unknown) =>
    list(x)
      .map(actorOf)
      .filter((a): a is Actor => a !== undefined)
  return {
    href: draftHref(href),
    enabled: o.enabled !== false,
    providers: actors(o.providers),
    consumers: actors(o.consumers),
    services: list(o.ingress_services).map((s): ServiceRef =>
      typeof s.href === 'string' ? { href: draftHref(s.href) } : portOf(s),
    ),
    unscopedConsumers: o.unscoped_consumers === true,
  }
}

const scopesOf = (x: unknown) =>
  (Array.isArray(x) ? x : []).map((s) =>
    list(s)
      .map((e) => hrefOf(e.label))
      .filter(Boolean),
  )

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
    interfaces: w.interfaces.map((i) => ({ name: i.name, address: i.address })),
  }
}

export function snapshotOf(
  docs: PolicyDocs,
  labels: readonly Label[],
  workloads: readonly WorkloadDoc[],
): PolicySnapshot {
  const ruleSets = docs.ruleSets.map((rs): RuleSet => ({
    href: draftHref(text(rs.href)),
    name: text(rs.name),
    enabled: rs.enabled !== false,
    scopes: (Array.isArray(rs.scopes) ? rs.scopes : []).map((s) =>
      list(s).flatMap((x): ScopeRef[] =>
        x.label_group
          ? [{ labelGroup: hrefOf(x.label_group) }]
          : x.label
            ? [{ label: hrefOf(x.label) }]
            : [],
      ),
    ),
    rules: list(rs.rules).map((r) => ruleOf(text(r.href), r)),
    denyRules: list(rs.deny_rules).map((r) => ({
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
    version: 0,
    labels: labels.map((l) => ({ href: l.href, key: l.key, value: l.value })),
    labelGroups: docs.labelGroups.map((g) => ({
      href: draftHref(text(g.href)),
      key: text(g.key),
      name: text(g.name),
      labels: list(g.labels).map(hrefOf),
      subGroups: list(g.sub_groups).map(hrefOf),
    })),
    workloads: workloads.map(workloadOf),
    services: docs.services.map((s) => ({
      href: draftHref(text(s.href)),
      name: text(s.name),
      ports: list(s.service_ports).map(portOf),
    })),
    ipLists: docs.ipLists.map((l) => ({
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
  }
}
