/**
 * The flows that match a traffic query, as the vendor's flow records, and what the draft policy
 * would decide for them. Pure: the store hands in aggregated rows and what the actors resolve to.
 */
import type { AddressSet, PolicyDecision, PolicySnapshot } from '@palisade/model'
import {
  addressSetContains,
  cidrContains,
  decide,
  DEFAULT_FAILSAFE,
  hostPolicyComputer,
} from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { AggregatedFlow, MergedFlow } from './flow-merge.js'
import { mergeReports } from './flow-merge.js'
import type {
  ActorRef,
  BoundaryDecision,
  ServiceFilter,
  Side,
  TrafficQuery,
} from './query-parse.js'

/** A workload as flow records show it. */
export interface FlowWorkload {
  readonly href: string
  readonly name: string
  readonly hostname: string
  readonly managed: boolean
  readonly os_type: string
  readonly labels: readonly { href: string; key: string; value: string }[]
}

/** What the actors of a query resolve to. */
export interface ActorContext {
  readonly workloadByIp: ReadonlyMap<string, FlowWorkload>
  readonly ipLists: ReadonlyMap<string, AddressSet>
  /** Each label group's labels, expanded, by its draft href. */
  readonly labelGroups: ReadonlyMap<string, ReadonlySet<string>>
  /** The override deny rules, by their draft hrefs. */
  readonly overrideDenyRules: ReadonlySet<string>
}

function actorMatches(a: ActorRef, ip: string, ctx: ActorContext, q: TrafficQuery): boolean {
  const w = ctx.workloadByIp.get(ip)
  switch (a.kind) {
    case 'label':
      return w?.labels.some((l) => l.href === a.href) ?? false
    case 'label_group': {
      const members = ctx.labelGroups.get(draftHref(a.href))
      return (members && w?.labels.some((l) => members.has(l.href))) ?? false
    }
    case 'fqdn':
      return a.addresses.includes(ip)
    case 'workload':
      return w?.href === a.href
    case 'ip_list': {
      const set = ctx.ipLists.get(a.href)
      if (!set || !addressSetContains(set, ip)) return false
      return !(q.excludeWorkloadsFromIpListQuery && w)
    }
    case 'ip_address':
      return cidrContains(a.cidr, ip)
    case 'ams':
      return w?.managed ?? false
    case 'transmission':
      // Every flow we record is unicast: the agent logs connections to and from its addresses.
      return a.value === 'unicast'
  }
}

export function sideMatches(side: Side, ip: string, ctx: ActorContext, q: TrafficQuery): boolean {
  if (side.exclude.some((a) => actorMatches(a, ip, ctx, q))) return false
  return (
    side.include.length === 0 ||
    side.include.some((group) => group.every((a) => actorMatches(a, ip, ctx, q)))
  )
}

const isIcmp = (proto: number) => proto === 1 || proto === 58

const serviceMatches = (s: ServiceFilter, f: MergedFlow) =>
  (s.proto === undefined || s.proto === f.proto) &&
  (s.port === undefined ||
    (f.port !== null && f.port >= s.port && f.port <= (s.toPort ?? s.port))) &&
  (s.icmpType === undefined || (isIcmp(f.proto) && f.icmp_type === s.icmpType)) &&
  (s.icmpCode === undefined || (isIcmp(f.proto) && f.icmp_code === s.icmpCode))

/** The boundary decisions a flow record is: blocked by a deny rule (override or not), or by a foreign rule after ours. */
function boundaryOf(f: MergedFlow, ctx: ActorContext): BoundaryDecision[] {
  const out: BoundaryDecision[] = []
  if (f.dropped_downstream) out.push('blocked_non_illumio_rule')
  if (f.policy_decision === 'blocked' && f.rule_href?.includes('/deny_rules/'))
    out.push(
      ctx.overrideDenyRules.has(draftHref(f.rule_href)) ? 'blocked_by_override_deny' : 'blocked',
    )
  return out
}

export function flowMatches(f: MergedFlow, q: TrafficQuery, ctx: ActorContext): boolean {
  if (
    q.policyDecisions.length > 0 &&
    !q.policyDecisions.includes(f.policy_decision as PolicyDecision)
  )
    return false
  if (
    q.boundaryDecisions.length > 0 &&
    !boundaryOf(f, ctx).some((b) => q.boundaryDecisions.includes(b))
  )
    return false
  const { include, exclude } = q.services
  if (include.length > 0 && !include.some((s) => serviceMatches(s, f))) return false
  if (exclude.some((s) => serviceMatches(s, f))) return false
  const src = sideMatches(q.sources, f.src_ip, ctx, q)
  const dst = sideMatches(q.destinations, f.dst_ip, ctx, q)
  return q.op === 'or' && (q.sources.include.length > 0 || q.destinations.include.length > 0)
    ? (q.sources.include.length > 0 && src) || (q.destinations.include.length > 0 && dst)
    : src && dst
}

const endpoint = (ip: string, ctx: ActorContext) => {
  const w = ctx.workloadByIp.get(ip)
  return {
    ip,
    ...(w && {
      workload: {
        href: w.href,
        name: w.name,
        hostname: w.hostname,
        os_type: w.os_type,
        managed: w.managed,
        labels: w.labels,
      },
    }),
  }
}

/**
 * One flow record in the vendor's shape, with Palisade's additions: the rule behind the
 * decision, the downstream drop, and what each end reported (`reports`).
 */
export function flowRecord(f: MergedFlow, ctx: ActorContext) {
  return {
    src: endpoint(f.src_ip, ctx),
    dst: endpoint(f.dst_ip, ctx),
    service: { ...(f.port !== null && { port: f.port }), proto: f.proto },
    ...(f.icmp_type !== null && { icmp_type: f.icmp_type, icmp_code: f.icmp_code }),
    num_connections: f.num_connections,
    // Summaries count connection openings; whether each is still open is not tracked.
    state: 'unknown',
    timestamp_range: { first_detected: f.first_seen, last_detected: f.last_seen },
    policy_decision: f.policy_decision,
    flow_direction: f.flow_direction,
    transmission: 'unicast',
    rule_href: f.rule_href,
    dropped_downstream: f.dropped_downstream,
    reports: f.reports,
  }
}
export type FlowRecord = ReturnType<typeof flowRecord>

/** The matching flows, newest first, cut at `max_results`; and how many matched before the cut. */
export function selectFlows(
  rows: readonly AggregatedFlow[],
  q: TrafficQuery,
  ctx: ActorContext,
): { records: FlowRecord[]; matches: number } {
  const hits = mergeReports(rows).filter((f) => flowMatches(f, q, ctx))
  hits.sort((a, b) =>
    a.last_seen < b.last_seen
      ? 1
      : a.last_seen > b.last_seen
        ? -1
        : b.num_connections - a.num_connections,
  )
  return {
    records: hits.slice(0, q.maxResults).map((f) => flowRecord(f, ctx)),
    matches: hits.length,
  }
}

/**
 * What the draft policy would decide for each flow, seen from the end whose decision the record
 * shows (the destination when it reported the flow, else the source), as `policy_decision` is.
 * The agent's own failsafe ports are not known here: the defaults are assumed.
 */
export function draftDecider(
  draft: PolicySnapshot,
): (
  f: Pick<FlowRecord, 'flow_direction' | 'src' | 'dst' | 'service' | 'icmp_type' | 'icmp_code'>,
) => PolicyDecision {
  const compute = hostPolicyComputer(draft)
  const known = new Set(draft.workloads.map((w) => w.href))
  return (f) => {
    const inbound = f.flow_direction === 'inbound'
    const self = inbound ? f.dst.workload?.href : f.src.workload?.href
    if (!self || !known.has(self)) return 'unknown'
    return decide(compute(self), DEFAULT_FAILSAFE, {
      direction: inbound ? 'inbound' : 'outbound',
      peer: inbound ? f.src.ip : f.dst.ip,
      proto: f.service.proto,
      ...(f.service.port !== undefined && { port: f.service.port }),
      ...(f.icmp_type !== undefined &&
        f.icmp_code !== undefined &&
        f.icmp_code !== null && { icmp: { type: f.icmp_type, code: f.icmp_code } }),
    }).decision
  }
}
