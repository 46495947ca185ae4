/**
 * Which hosts a change can reach: the server recomputes those and leaves every other host's
 * policy as it is, so a change costs work in proportion to what it touches, not to the estate.
 * Each function here is checked against computing every host both ways (the property tests in
 * host-policy-affected.test.ts): a host outside the set it gives keeps the policy it had.
 */
import type { Index, PolicySnapshot, SideOptions } from './host-policy.js'
import {
  indexOf,
  inScope,
  resolveSide,
  selectsWorkload,
  settingsFor,
  sideOptions,
} from './host-policy.js'
import type { Actor, Rule, RuleSet, ScopeRef } from './rules.js'
import type { Workload } from './workload.js'

/** A workload as the policy saw it before a change and after it; absent when added or removed. */
export interface WorkloadChange {
  readonly before?: Workload
  readonly after?: Workload
}

/**
 * The hosts whose policy can differ between two snapshots, given the workloads that changed
 * between them: those a workload change reaches (`workloadsAffected`) and those a change of the
 * policy objects reaches (`policyAffected`), or `all` when a label every selector reads changed
 * under something that carries it. The two are taken one after the other, through the old policy
 * with the new workloads, so each sees only its own kind of change.
 */
export function hostsAffected(
  before: PolicySnapshot,
  after: PolicySnapshot,
  changes: readonly WorkloadChange[],
): Set<string> | 'all' {
  const between: PolicySnapshot = { ...before, workloads: after.workloads }
  const idx = indexOf(between)
  const policy = policyChangeAffected(idx, indexOf(after))
  if (policy === 'all') return 'all'
  const out = affectedByWorkloads(idx, changes)
  for (const h of policy) out.add(h)
  return out
}

/**
 * The workloads whose host policy a change of workloads can alter, when the rest of the snapshot
 * (rules, groups, lists, services, virtual services and their bindings, settings) stayed the
 * same: the changed workloads themselves, and every workload on the other side of a rule that a
 * changed workload is on, before or after the change (as a provider through a virtual service
 * bound to it, too). A host's policy depends on nothing else, so every host outside this set
 * keeps the policy it has.
 */
export function workloadsAffected(
  snapshot: PolicySnapshot,
  changes: readonly WorkloadChange[],
): Set<string> {
  return affectedByWorkloads(indexOf(snapshot), changes)
}

/**
 * The hosts whose policy can differ between two snapshots of the same workloads: the hosts a
 * changed rule reaches in either (its providers, the workloads bound to its provider virtual
 * services, its consumers, in each scope of its rule set). A rule counts as changed when it, or
 * its rule set's scopes or state, changed, or when it names (in a side or a scope) a label,
 * label group, IP list or service that changed, or its providers take in a virtual service
 * that changed (or whose service or bindings did). Firewall settings reach the hosts whose mode,
 * reject or loopback setting comes out differently. `all` when a label that a workload or a
 * virtual service carries was added, removed or changed type: every selector of its type reads it.
 */
export function policyAffected(before: PolicySnapshot, after: PolicySnapshot): Set<string> | 'all' {
  return policyChangeAffected(indexOf(before), indexOf(after))
}

function policyChangeAffected(a: Index, b: Index): Set<string> | 'all' {
  const [sa, sb] = [a.snapshot, b.snapshot]
  const labels = changedHrefs(sa.labels, sb.labels)
  const carries = (s: PolicySnapshot) =>
    [...s.workloads, ...s.virtualServices].some((x) => x.labels.some((l) => labels.has(l)))
  if (labels.size > 0 && (carries(sa) || carries(sb))) return 'all'
  const refs = changedGroups(sa, sb, labels)
  for (const l of labels) refs.add(l)
  const ipLists = changedHrefs(sa.ipLists, sb.ipLists)
  const services = changedHrefs(sa.services, sb.services)
  const virtualServices = changedHrefs(sa.virtualServices, sb.virtualServices)
  for (const s of [sa, sb])
    for (const v of s.virtualServices)
      if (v.service !== undefined && services.has(v.service)) virtualServices.add(v.href)
  const bindings = changedHrefs(sa.serviceBindings, sb.serviceBindings)
  for (const s of [sa, sb])
    for (const bd of s.serviceBindings)
      if (bindings.has(bd.href)) virtualServices.add(bd.virtualService)

  const namesChanged = (list: readonly (Actor | ScopeRef)[]) =>
    list.some((x) => {
      if ('kind' in x)
        return (
          ((x.kind === 'label' || x.kind === 'label_group') && refs.has(x.href)) ||
          (x.kind === 'ip_list' && ipLists.has(x.href))
        )
      return refs.has('label' in x ? x.label : x.labelGroup)
    })
  const ruleChanged = (rule: Rule, other: Rule | undefined) =>
    other === undefined ||
    JSON.stringify(rule) !== JSON.stringify(other) ||
    namesChanged(rule.providers) ||
    namesChanged(rule.consumers) ||
    rule.services.some((s) => 'href' in s && services.has(s.href))

  const out = new Set<string>()
  const reach = (idx: Index, theirs: Index) => {
    const others = new Map(theirs.snapshot.ruleSets.map((rs) => [rs.href, rs]))
    for (const rs of idx.snapshot.ruleSets) {
      if (!rs.enabled) continue
      const other = others.get(rs.href)
      const whole =
        !other ||
        !other.enabled ||
        JSON.stringify(rs.scopes) !== JSON.stringify(other.scopes) ||
        rs.scopes.some(namesChanged)
      const otherRules = new Map(rulesOf(other).map((r) => [r.href, r]))
      const changed = new Set(
        rulesOf(rs).filter((r) => whole || ruleChanged(r, otherRules.get(r.href))),
      )
      for (const scope of rs.scopes.length === 0 ? [null] : rs.scopes)
        for (const rule of rulesOf(rs)) {
          const own = changed.has(rule)
          if (!rule.enabled || (!own && virtualServices.size === 0)) continue
          const providers = resolveSide(rule.providers, scope, sideOptions(rule, 'providers'), idx)
          if (!own && !providers.virtualServices.some((v) => virtualServices.has(v.href))) continue
          for (const w of providers.workloads) out.add(w.href)
          for (const v of providers.virtualServices)
            for (const bd of idx.bindings.get(v.href) ?? []) out.add(bd.workload.href)
          const consumerScope = rule.unscopedConsumers ? null : scope
          const co = sideOptions(rule, 'consumers')
          for (const w of resolveSide(rule.consumers, consumerScope, co, idx).workloads)
            out.add(w.href)
        }
    }
  }
  reach(a, b)
  reach(b, a)

  if (refs.size > 0 || JSON.stringify(sa.firewallSettings) !== JSON.stringify(sb.firewallSettings))
    for (const w of sb.workloads)
      if (JSON.stringify(settingsFor(w, a)) !== JSON.stringify(settingsFor(w, b))) out.add(w.href)
  return out
}

const rulesOf = (rs: RuleSet | undefined): readonly Rule[] =>
  rs ? [...rs.denyRules, ...rs.rules] : []

/** The hrefs of the objects added, removed or changed between two lists. */
function changedHrefs<T extends { readonly href: string }>(
  a: readonly T[],
  b: readonly T[],
): Set<string> {
  const inB = new Map(b.map((x) => [x.href, JSON.stringify(x)]))
  const inA = new Set(a.map((x) => x.href))
  const out = new Set<string>()
  for (const x of a) if (inB.get(x.href) !== JSON.stringify(x)) out.add(x.href)
  for (const x of b) if (!inA.has(x.href)) out.add(x.href)
  return out
}

/**
 * The label groups that stand for something else after the change: changed, added or removed
 * ones, those holding a changed label, and every group holding one of those as a sub-group.
 */
function changedGroups(
  a: PolicySnapshot,
  b: PolicySnapshot,
  labels: ReadonlySet<string>,
): Set<string> {
  const out = changedHrefs(a.labelGroups, b.labelGroups)
  const all = [...a.labelGroups, ...b.labelGroups]
  for (let grew = true; grew;) {
    grew = false
    for (const g of all)
      if (
        !out.has(g.href) &&
        (g.labels.some((l) => labels.has(l)) || g.subGroups.some((s) => out.has(s)))
      ) {
        out.add(g.href)
        grew = true
      }
  }
  return out
}

/** What makes a workload's peers: its addresses and, for subnet rules, prefix lengths. */
const peerKey = (w: Workload) => w.interfaces.map((i) => `${i.address}/${i.cidrBlock ?? ''}`).join()

/** Whether a change can alter a peer set: what a workload is matched by, or its addresses. */
const movesPeers = ({ before, after }: WorkloadChange) =>
  !before ||
  !after ||
  before.labels.join() !== after.labels.join() ||
  peerKey(before) !== peerKey(after)

function affectedByWorkloads(idx: Index, changes: readonly WorkloadChange[]): Set<string> {
  const snapshot = idx.snapshot
  const out = new Set(changes.flatMap((c) => (c.after ? [c.after.href] : [])))
  const moved = changes.filter(movesPeers).flatMap((c) => [c.before, c.after])
  const seen = moved.filter((w): w is Workload => w !== undefined)
  if (seen.length === 0) return out
  const seenHrefs = new Set(seen.map((w) => w.href))
  // bindings are read by href: a removed workload's binding still names what it served
  const boundToMoved = new Set(
    snapshot.serviceBindings.filter((b) => seenHrefs.has(b.workload)).map((b) => b.virtualService),
  )
  // the same predicate the host policy resolves sides with
  const matched = (actors: readonly Actor[], scope: readonly ScopeRef[] | null, o: SideOptions) =>
    seen.some((w) => inScope(w.labels, scope, idx) && selectsWorkload(actors, w, o, idx))
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
        const po = sideOptions(rule, 'providers')
        const co = sideOptions(rule, 'consumers')
        const providers = resolveSide(rule.providers, scope, po, idx)
        // providers (and workloads bound to provider virtual services) see consumers as peers
        if (matched(rule.consumers, consumerScope, co)) {
          addAll(providers.workloads)
          for (const v of providers.virtualServices)
            addAll((idx.bindings.get(v.href) ?? []).map((b) => b.workload))
        }
        // consumers see providers, and the workloads bound to provider virtual services
        const boundMoved = providers.virtualServices.some((v) => boundToMoved.has(v.href))
        if (boundMoved || matched(rule.providers, scope, po))
          addAll(resolveSide(rule.consumers, consumerScope, co, idx).workloads)
      }
    }
  }
  return out
}
