import type { FirewallSettings } from './firewall-settings.js'
import type { AddressEntry, AddressSet } from './ip.js'
import { addressSetOf, unionAddressSets } from './ip.js'
import type { LabelIndex, LabelSelector } from './label-match.js'
import { labelIndexOf, labelSelector, selectorMatches } from './label-match.js'
import type { Label, LabelGroup } from './labels.js'
import type { ModeResolution } from './mode.js'
import { resolveMode } from './mode.js'
import type {
  Actor,
  IpList,
  Rule,
  RuleSet,
  RuleSide,
  ScopeRef,
  ServiceBinding,
  ServiceRef,
  VirtualService,
} from './rules.js'
import type { Service, ServicePort } from './service.js'
import { normaliseServicePorts } from './service.js'
import type { EnforcementMode, VisibilityLevel, Workload } from './workload.js'

/** A provisioned policy version: everything needed to compute any workload's host policy. */
export interface PolicySnapshot {
  readonly version: number
  readonly labels: readonly Label[]
  readonly labelGroups: readonly LabelGroup[]
  readonly workloads: readonly Workload[]
  readonly services: readonly Service[]
  readonly ipLists: readonly IpList[]
  readonly ruleSets: readonly RuleSet[]
  readonly firewallSettings: FirewallSettings
  readonly virtualServices: readonly VirtualService[]
  /** Bindings are not provisioned: the current ones, whatever the version. */
  readonly serviceBindings: readonly ServiceBinding[]
}

export const RULE_ACTIONS = ['override_deny', 'allow', 'deny'] as const
export type RuleAction = (typeof RULE_ACTIONS)[number]
export type Direction = 'inbound' | 'outbound'

/** One rule as it concerns this workload: peers are the other side, ports are the service's. */
export interface HostRule {
  /** Stable across versions: the policy rule and the direction. */
  readonly key: string
  readonly ruleHref: string
  readonly action: RuleAction
  readonly direction: Direction
  /** The other side's addresses; `any` when the rule names all addresses. */
  readonly peers: AddressSet | 'any'
  readonly services: readonly ServicePort[]
}

export interface HostPolicy {
  readonly version: number
  readonly workload: { readonly href: string; readonly name: string }
  readonly enforcementMode: EnforcementMode
  readonly visibilityLevel: VisibilityLevel
  readonly mode: ModeResolution
  /** Blocked connections get a reject instead of a silent drop. */
  readonly rejectBlocked: boolean
  /** Loopback traffic goes through policy instead of being allowed outright. */
  readonly loopbackInPolicy: boolean
  /** Ordered: override-deny, allow, deny; each group sorted by key. */
  readonly rules: readonly HostRule[]
}

/**
 * A shared address set named by its content id instead of written out: the agent channel sends a
 * large set once to each agent that holds it, and afterwards only what changed in it.
 */
export interface SetRef {
  readonly set: string
}

/** A rule as the agent channel carries it: its peers written out, or a shared set by id. */
export type DocRule = Omit<HostRule, 'peers'> & { readonly peers: HostRule['peers'] | SetRef }

/** A host policy as the agent channel carries it: an agent resolves the sets it names. */
export interface PolicyDoc extends Omit<HostPolicy, 'rules'> {
  readonly rules: readonly DocRule[]
}

/** A snapshot indexed for computing host policies (shared with host-policy-affected.ts). */
export interface Index {
  readonly snapshot: PolicySnapshot
  readonly labels: LabelIndex
  readonly services: ReadonlyMap<string, Service>
  readonly ipLists: ReadonlyMap<string, IpList>
  /** The bindings of each virtual service to workloads the snapshot holds. */
  readonly bindings: ReadonlyMap<string, readonly Bound[]>
  /** Label references compiled once per actor list or scope. */
  readonly selectors: WeakMap<readonly (Actor | ScopeRef)[], LabelSelector | null>
  /** A rule side resolved in a scope is the same for every host: resolved once per snapshot. */
  readonly sides: WeakMap<readonly Actor[], Map<readonly ScopeRef[] | null, Map<string, Side>>>
}

interface Bound {
  readonly binding: ServiceBinding
  readonly workload: Workload
}

/** How a side is read: what its label actors select, and whether its peers are subnets. */
export interface SideOptions {
  readonly workloads: boolean
  readonly virtualServices: boolean
  readonly subnets: boolean
}

const CONSUMERS: SideOptions = { workloads: true, virtualServices: false, subnets: false }

export function sideOptions(rule: Rule, side: RuleSide): SideOptions {
  const subnets = rule.useWorkloadSubnets?.includes(side) ?? false
  if (side === 'consumers') return { ...CONSUMERS, subnets }
  const as = rule.providersResolveAs ?? ['workloads']
  return {
    workloads: as.includes('workloads'),
    virtualServices: as.includes('virtual_services'),
    subnets,
  }
}

const labelRefs = (actors: readonly Actor[]): ScopeRef[] =>
  actors.flatMap((a): ScopeRef[] => {
    const exclusion = 'exclusion' in a && a.exclusion ? ({ exclusion: true } as const) : {}
    if (a.kind === 'label') return [{ label: a.href, ...exclusion }]
    if (a.kind === 'label_group') return [{ labelGroup: a.href, ...exclusion }]
    return []
  })

function selectorOf(list: readonly (Actor | ScopeRef)[], idx: Index): LabelSelector | null {
  if (idx.selectors.has(list)) return idx.selectors.get(list) ?? null
  const refs = list.flatMap((x) => ('kind' in x ? labelRefs([x]) : [x]))
  const sel = labelSelector(refs, idx.labels)
  idx.selectors.set(list, sel)
  return sel
}

/** Whether something with these labels is in a scope (null: no scope, everything is). */
export function inScope(labels: readonly string[], scope: readonly ScopeRef[] | null, idx: Index) {
  if (scope === null) return true
  const sel = selectorOf(scope, idx)
  return sel === null || selectorMatches(sel, labels, idx.labels)
}

/** Whether a side's actors select this workload, or this virtual service (scope aside). */
function selects(
  actors: readonly Actor[],
  target: { readonly href: string; readonly labels: readonly string[] },
  kind: 'workload' | 'virtual_service',
  byLabels: boolean,
  idx: Index,
): boolean {
  if (actors.some((a) => a.kind === kind && a.href === target.href)) return true
  if (!byLabels) return false
  if (actors.some((a) => a.kind === 'ams')) return true
  const sel = selectorOf(actors, idx)
  return sel !== null && selectorMatches(sel, target.labels, idx.labels)
}

export const selectsWorkload = (
  actors: readonly Actor[],
  w: Workload,
  o: SideOptions,
  idx: Index,
) => selects(actors, w, 'workload', o.workloads, idx)

export interface Side {
  readonly workloads: ReadonlySet<Workload>
  readonly virtualServices: readonly VirtualService[]
  /** The peers its workloads and IP lists make; `any` when it names all addresses. */
  readonly addresses: AddressSet | 'any'
  /** Whether it names workloads or addresses at all (not only virtual services). */
  readonly direct: boolean
}

const ANY_IP_LIST = (list: IpList) =>
  list.ranges.some((r) => !r.exclusion && (r.from === '0.0.0.0/0' || r.from === '::/0')) &&
  addressSetOf(list.ranges).v4.join() === '0.0.0.0/0' &&
  addressSetOf(list.ranges).v6.join() === '::/0'

/** A workload's peer addresses: each interface's address, or its subnet when known and asked. */
const peerEntries = (ws: Iterable<Workload>, subnets: boolean) =>
  [...ws].flatMap((w) =>
    w.interfaces.map((i) => ({
      from: subnets && i.cidrBlock !== undefined ? `${i.address}/${i.cidrBlock}` : i.address,
    })),
  )

/** Resolves one side of a rule inside a scope (or anywhere, when `scope` is null). */
export function resolveSide(
  actors: readonly Actor[],
  scope: readonly ScopeRef[] | null,
  o: SideOptions,
  idx: Index,
): Side {
  const byScope = idx.sides.get(actors) ?? new Map<readonly ScopeRef[] | null, Map<string, Side>>()
  idx.sides.set(actors, byScope)
  const byOptions = byScope.get(scope) ?? new Map<string, Side>()
  byScope.set(scope, byOptions)
  const key = `${o.workloads}/${o.virtualServices}/${o.subnets}`
  const cached = byOptions.get(key)
  if (cached) return cached
  const side = resolveSideUncached(actors, scope, o, idx)
  byOptions.set(key, side)
  return side
}

function resolveSideUncached(
  actors: readonly Actor[],
  scope: readonly ScopeRef[] | null,
  o: SideOptions,
  idx: Index,
): Side {
  const workloads = idx.snapshot.workloads.filter(
    (w) => inScope(w.labels, scope, idx) && selectsWorkload(actors, w, o, idx),
  )
  const virtualServices = idx.snapshot.virtualServices.filter(
    (v) =>
      inScope(v.labels, scope, idx) &&
      selects(actors, v, 'virtual_service', o.virtualServices, idx),
  )
  const direct = actors.some(
    (a) =>
      a.kind === 'workload' ||
      a.kind === 'ip_list' ||
      (o.workloads && (a.kind === 'ams' || a.kind === 'label' || a.kind === 'label_group')),
  )
  const lists = actors.flatMap((a) => {
    if (a.kind !== 'ip_list') return []
    const list = idx.ipLists.get(a.href)
    return list ? [list] : []
  })
  const out = { workloads: new Set(workloads), virtualServices, direct }
  if (lists.some(ANY_IP_LIST)) return { ...out, addresses: 'any' }
  // Exclusions apply within their own list only; workload addresses are normalised in one go.
  const addresses = unionAddressSets([
    ...lists.map((l) => addressSetOf(l.ranges)),
    addressSetOf(peerEntries(workloads, o.subnets)),
  ])
  return { ...out, addresses }
}

function resolveServices(refs: readonly ServiceRef[], idx: Index): ServicePort[] {
  if (refs.length === 0) return [{ proto: -1 }]
  return normaliseServicePorts(
    refs.flatMap((r) => ('href' in r ? (idx.services.get(r.href)?.ports ?? []) : [r])),
  )
}

/** A virtual service's ports, or those of its service; on one binding, with its overrides. */
function virtualServicePorts(
  v: VirtualService,
  binding: ServiceBinding | undefined,
  idx: Index,
): ServicePort[] {
  const base = v.service !== undefined ? (idx.services.get(v.service)?.ports ?? []) : v.ports
  const overrides = binding?.portOverrides ?? []
  return normaliseServicePorts(
    base.map((sp) => {
      const o = overrides.find(
        (x) =>
          (x.proto === undefined || x.proto === sp.proto) &&
          (x.port === undefined || x.port === sp.port),
      )
      if (!o) return sp
      const span = sp.port !== undefined && sp.toPort !== undefined ? sp.toPort - sp.port : 0
      const toPort = o.newToPort ?? o.newPort + span
      return { proto: sp.proto, port: o.newPort, ...(toPort !== o.newPort && { toPort }) }
    }),
  )
}

function unionPeers(a: AddressSet | 'any', b: AddressSet | 'any'): AddressSet | 'any' {
  if (a === 'any' || b === 'any') return 'any'
  return unionAddressSets([a, b])
}

/**
 * What a consumer may reach of a virtual service: its bound workloads on their ports (one
 * group per binding with port overrides), its IP overrides on its ports, and its IP service
 * addresses on theirs. Keyed so one key always has one set of ports.
 */
function virtualServiceTargets(
  v: VirtualService,
  subnets: boolean,
  idx: Index,
): { suffix: string; peers: AddressSet; services: ServicePort[] }[] {
  const groups = new Map<string, { entries: AddressEntry[]; services: ServicePort[] }>()
  const add = (suffix: string, services: ServicePort[], entries: AddressEntry[]) => {
    const g = groups.get(suffix) ?? { entries: [], services }
    g.entries.push(...entries)
    groups.set(suffix, g)
  }
  const own = virtualServicePorts(v, undefined, idx)
  for (const { binding, workload } of idx.bindings.get(v.href) ?? []) {
    const overridden = binding.portOverrides.length > 0
    add(
      overridden ? binding.href : v.href,
      overridden ? virtualServicePorts(v, binding, idx) : own,
      peerEntries([workload], subnets),
    )
  }
  add(
    v.href,
    own,
    v.ipOverrides.map((from) => ({ from })),
  )
  for (const a of v.serviceAddresses) {
    if (a.port === undefined) add(v.href, own, [{ from: a.ip }])
    else {
      const protos = [...new Set(own.map((sp) => sp.proto))]
      add(
        `${v.href}:${a.port}`,
        protos.map((proto) => ({ proto, port: a.port })),
        [{ from: a.ip }],
      )
    }
  }
  return [...groups]
    .filter(([, g]) => g.entries.length > 0)
    .map(([suffix, g]) => ({ suffix, peers: addressSetOf(g.entries), services: g.services }))
}

/** Rules of one rule set, in every scope, as they concern workload `w`. */
function rulesFor(w: Workload, rs: RuleSet, idx: Index): HostRule[] {
  const scopes: readonly (readonly ScopeRef[] | null)[] =
    rs.scopes.length === 0 ? [null] : rs.scopes
  const all: { rule: Rule; action: RuleAction }[] = [
    ...rs.denyRules.map(
      (rule) => ({ rule, action: rule.override ? 'override_deny' : 'deny' }) as const,
    ),
    ...rs.rules.map((rule) => ({ rule, action: 'allow' }) as const),
  ]
  const out: HostRule[] = []
  const bindings = (v: VirtualService) =>
    (idx.bindings.get(v.href) ?? []).filter((b) => b.workload === w).map((b) => b.binding)
  for (const scope of scopes) {
    for (const { rule, action } of all) {
      if (!rule.enabled) continue
      const po = sideOptions(rule, 'providers')
      const providers = resolveSide(rule.providers, scope, po, idx)
      const consumers = resolveSide(
        rule.consumers,
        rule.unscopedConsumers ? null : scope,
        sideOptions(rule, 'consumers'),
        idx,
      )
      const base = { ruleHref: rule.href, action }
      const services = () => resolveServices(rule.services, idx)
      const inbound = { ...base, direction: 'inbound', peers: consumers.addresses } as const
      if (providers.workloads.has(w))
        out.push({ ...inbound, key: `${rule.href}#in`, services: services() })
      // a virtual service is served by the workloads bound to it, on their ports
      for (const v of providers.virtualServices) {
        const mine = bindings(v)
        if (mine.length === 0) continue
        out.push({
          ...inbound,
          key: `${rule.href}#in@${v.href}`,
          services: normaliseServicePorts(mine.flatMap((b) => virtualServicePorts(v, b, idx))),
        })
      }
      if (!consumers.workloads.has(w)) continue
      const outbound = { ...base, direction: 'outbound' } as const
      if (providers.direct)
        out.push({
          ...outbound,
          key: `${rule.href}#out`,
          peers: providers.addresses,
          services: services(),
        })
      for (const v of providers.virtualServices)
        for (const t of virtualServiceTargets(v, po.subnets, idx))
          out.push({
            ...outbound,
            key: `${rule.href}#out@${t.suffix}`,
            peers: t.peers,
            services: t.services,
          })
    }
  }
  return out
}

/**
 * The host policy for one workload: its mode, and every rule that concerns it with the peers
 * resolved to address sets. Pure: the same snapshot and workload always give the same result.
 */
export function computeHostPolicy(snapshot: PolicySnapshot, workloadHref: string): HostPolicy {
  return hostPolicyComputer(snapshot)(workloadHref)
}

/**
 * Computes host policies for many workloads of one snapshot: the indexes and every resolved
 * rule side are built once and shared, so N hosts cost about N rule walks, not N x N.
 */
export function hostPolicyComputer(snapshot: PolicySnapshot): (workloadHref: string) => HostPolicy {
  const idx = indexOf(snapshot)
  const byHref = new Map(snapshot.workloads.map((w) => [w.href, w]))
  return (workloadHref) => {
    const w = byHref.get(workloadHref)
    if (!w) throw new Error(`workload ${workloadHref} is not in policy version ${snapshot.version}`)
    return hostPolicyFor(w, idx)
  }
}

export function indexOf(snapshot: PolicySnapshot): Index {
  const workloads = new Map(snapshot.workloads.map((w) => [w.href, w]))
  const bindings = new Map<string, Bound[]>()
  for (const binding of snapshot.serviceBindings) {
    const workload = workloads.get(binding.workload)
    if (!workload) continue
    const list = bindings.get(binding.virtualService) ?? []
    list.push({ binding, workload })
    bindings.set(binding.virtualService, list)
  }
  return {
    snapshot,
    labels: labelIndexOf(snapshot.labels, snapshot.labelGroups),
    services: new Map(snapshot.services.map((s) => [s.href, s])),
    ipLists: new Map(snapshot.ipLists.map((l) => [l.href, l])),
    bindings,
    selectors: new WeakMap(),
    sides: new WeakMap(),
  }
}

function hostPolicyFor(w: Workload, idx: Index): HostPolicy {
  const snapshot = idx.snapshot
  const byKey = new Map<string, HostRule>()
  for (const rs of snapshot.ruleSets) {
    if (!rs.enabled) continue
    for (const r of rulesFor(w, rs, idx)) {
      const prev = byKey.get(r.key)
      byKey.set(r.key, prev ? { ...prev, peers: unionPeers(prev.peers, r.peers) } : r)
    }
  }
  const order = (a: RuleAction) => (a === 'override_deny' ? 0 : a === 'allow' ? 1 : 2)
  const rules = [...byKey.values()].sort(
    (a, b) => order(a.action) - order(b.action) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  )
  return {
    version: snapshot.version,
    workload: { href: w.href, name: w.name },
    enforcementMode: w.enforcementMode,
    visibilityLevel: w.visibilityLevel ?? 'flow_summary',
    ...settingsFor(w, idx),
    rules,
  }
}

/** What the firewall settings make of one workload's host policy. */
export function settingsFor(
  w: Workload,
  idx: Index,
): Pick<HostPolicy, 'mode' | 'rejectBlocked' | 'loopbackInPolicy'> {
  const fs = idx.snapshot.firewallSettings
  const inAny = (scopes: readonly (readonly ScopeRef[])[]) =>
    scopes.some((s) => inScope(w.labels, s, idx))
  return {
    mode: resolveMode(w, fs),
    rejectBlocked: inAny(fs.blockedConnectionRejectScopes),
    loopbackInPolicy: inAny(fs.loopbackInterfacesInPolicyScopes),
  }
}
