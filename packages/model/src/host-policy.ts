import type { FirewallSettings } from './firewall-settings.js'
import type { AddressSet } from './ip.js'
import { addressSetOf, unionAddressSets } from './ip.js'
import type { Label, LabelGroup } from './labels.js'
import { expandLabelGroup } from './labels.js'
import type { ModeResolution } from './mode.js'
import { resolveMode } from './mode.js'
import type { Actor, IpList, Rule, RuleSet, ScopeRef, ServiceRef } from './rules.js'
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

interface Index {
  readonly snapshot: PolicySnapshot
  readonly groups: ReadonlyMap<string, LabelGroup>
  readonly services: ReadonlyMap<string, Service>
  readonly ipLists: ReadonlyMap<string, IpList>
  /** A rule side resolved in a scope is the same for every host: resolved once per snapshot. */
  readonly sides: WeakMap<readonly Actor[], Map<readonly ScopeRef[] | null, Side>>
}

const inScope = (w: Workload, scope: readonly ScopeRef[], idx: Index) =>
  scope.every((ref) =>
    'label' in ref
      ? w.labels.includes(ref.label)
      : [...expandLabelGroup(ref.labelGroup, idx.groups)].some((l) => w.labels.includes(l)),
  )

const scopeMatches = (w: Workload, scopes: readonly (readonly string[])[]) =>
  scopes.some((s) => s.every((l) => w.labels.includes(l)))

function actorWorkloads(actor: Actor, w: Workload, idx: Index): boolean {
  switch (actor.kind) {
    case 'ams':
      return true
    case 'label':
      return w.labels.includes(actor.href)
    case 'label_group':
      return [...expandLabelGroup(actor.href, idx.groups)].some((l) => w.labels.includes(l))
    case 'workload':
      return w.href === actor.href
    case 'ip_list':
      return false
  }
}

interface Side {
  readonly workloads: ReadonlySet<Workload>
  readonly addresses: AddressSet | 'any'
}

const ANY_IP_LIST = (list: IpList) =>
  list.ranges.some((r) => !r.exclusion && (r.from === '0.0.0.0/0' || r.from === '::/0')) &&
  addressSetOf(list.ranges).v4.join() === '0.0.0.0/0' &&
  addressSetOf(list.ranges).v6.join() === '::/0'

/** Resolves one side of a rule inside a scope (or anywhere, when `scope` is null). */
function resolveSide(
  actors: readonly Actor[],
  scope: readonly ScopeRef[] | null,
  idx: Index,
): Side {
  const byScope = idx.sides.get(actors) ?? new Map<readonly ScopeRef[] | null, Side>()
  idx.sides.set(actors, byScope)
  const cached = byScope.get(scope)
  if (cached) return cached
  const side = resolveSideUncached(actors, scope, idx)
  byScope.set(scope, side)
  return side
}

function resolveSideUncached(
  actors: readonly Actor[],
  scope: readonly ScopeRef[] | null,
  idx: Index,
): Side {
  const workloads = idx.snapshot.workloads.filter(
    (w) =>
      (scope === null || inScope(w, scope, idx)) && actors.some((a) => actorWorkloads(a, w, idx)),
  )
  const lists = actors.flatMap((a) => {
    if (a.kind !== 'ip_list') return []
    const list = idx.ipLists.get(a.href)
    return list ? [list] : []
  })
  if (lists.some(ANY_IP_LIST)) return { workloads: new Set(workloads), addresses: 'any' }
  // Exclusions apply within their own list only; workload addresses are normalised in one go.
  const addresses = unionAddressSets([
    ...lists.map((l) => addressSetOf(l.ranges)),
    addressSetOf(workloads.flatMap((wl) => wl.interfaces.map((i) => ({ from: i.address })))),
  ])
  return { workloads: new Set(workloads), addresses }
}

function resolveServices(refs: readonly ServiceRef[], idx: Index): ServicePort[] {
  if (refs.length === 0) return [{ proto: -1 }]
  return normaliseServicePorts(
    refs.flatMap((r) => ('href' in r ? (idx.services.get(r.href)?.ports ?? []) : [r])),
  )
}

function unionPeers(a: AddressSet | 'any', b: AddressSet | 'any'): AddressSet | 'any' {
  if (a === 'any' || b === 'any') return 'any'
  return unionAddressSets([a, b])
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
  for (const scope of scopes) {
    if (scope !== null && !inScope(w, scope, idx)) continue
    for (const { rule, action } of all) {
      if (!rule.enabled) continue
      const providers = resolveSide(rule.providers, scope, idx)
      const consumers = resolveSide(rule.consumers, rule.unscopedConsumers ? null : scope, idx)
      const services = resolveServices(rule.services, idx)
      if (providers.workloads.has(w)) {
        out.push({
          key: `${rule.href}#in`,
          ruleHref: rule.href,
          action,
          direction: 'inbound',
          peers: consumers.addresses,
          services,
        })
      }
      if (consumers.workloads.has(w)) {
        out.push({
          key: `${rule.href}#out`,
          ruleHref: rule.href,
          action,
          direction: 'outbound',
          peers: providers.addresses,
          services,
        })
      }
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

/** A workload as the policy saw it before a change and after it; absent when added or removed. */
export interface WorkloadChange {
  readonly before?: Workload
  readonly after?: Workload
}

/** Whether a change can alter a peer set: what a workload is matched by, or its addresses. */
const movesPeers = ({ before, after }: WorkloadChange) =>
  !before ||
  !after ||
  before.labels.join() !== after.labels.join() ||
  before.interfaces.map((i) => i.address).join() !== after.interfaces.map((i) => i.address).join()

/**
 * The workloads whose host policy a change of workloads can alter, when the rest of the snapshot
 * (rules, groups, lists, services, settings) stayed the same: the changed workloads themselves,
 * and every workload on the other side of a rule that a changed workload matches before or after
 * the change. A host's policy depends on nothing else, so every host outside this set keeps the
 * policy it has (the property test computes both ways and checks it).
 */
export function workloadsAffected(
  snapshot: PolicySnapshot,
  changes: readonly WorkloadChange[],
): Set<string> {
  const idx = indexOf(snapshot)
  const out = new Set(changes.flatMap((c) => (c.after ? [c.after.href] : [])))
  const moved = changes.filter(movesPeers).flatMap((c) => [c.before, c.after])
  const seen = moved.filter((w): w is Workload => w !== undefined)
  if (seen.length === 0) return out
  const matched = (actors: readonly Actor[], scope: readonly ScopeRef[] | null) =>
    seen.some(
      (w) =>
        (scope === null || inScope(w, scope, idx)) && actors.some((a) => actorWorkloads(a, w, idx)),
    )
  const addAll = (ws: Iterable<Workload>) => {
    for (const w of ws) out.add(w.href)
  }
  for (const rs of snapshot.ruleSets) {
    if (!rs.enabled) continue
    const scopes = rs.scopes.length === 0 ? [null] : rs.scopes
    for (const scope of scopes) {
      for (const rule of [...rs.denyRules, ...rs.rules]) {
        if (!rule.enabled) continue
        const consumerScope = rule.unscopedConsumers ? null : scope
        // providers see consumers as inbound peers, consumers in the scope see providers
        if (matched(rule.consumers, consumerScope))
          addAll(resolveSide(rule.providers, scope, idx).workloads)
        if (matched(rule.providers, scope))
          addAll(
            [...resolveSide(rule.consumers, consumerScope, idx).workloads].filter(
              (w) => scope === null || inScope(w, scope, idx),
            ),
          )
      }
    }
  }
  return out
}

function indexOf(snapshot: PolicySnapshot): Index {
  return {
    snapshot,
    groups: new Map(snapshot.labelGroups.map((g) => [g.href, g])),
    services: new Map(snapshot.services.map((s) => [s.href, s])),
    ipLists: new Map(snapshot.ipLists.map((l) => [l.href, l])),
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
  const fs = snapshot.firewallSettings
  return {
    version: snapshot.version,
    workload: { href: w.href, name: w.name },
    enforcementMode: w.enforcementMode,
    visibilityLevel: w.visibilityLevel ?? 'flow_summary',
    mode: resolveMode(w, fs),
    rejectBlocked: scopeMatches(w, fs.blockedConnectionRejectScopes),
    loopbackInPolicy: scopeMatches(w, fs.loopbackInterfacesInPolicyScopes),
    rules,
  }
}
