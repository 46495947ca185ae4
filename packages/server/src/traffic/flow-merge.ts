/**
 * One record per connection, as the vendor's flows are: a connection between two agents is
 * reported by both ends (the source's outbound summary and the destination's inbound one),
 * and here the two reports become one record that counts its connections once and keeps what
 * each end decided. Pure.
 */

/** Flow summaries of one end, summed over the query's range (the store's GROUP BY). */
export interface AggregatedFlow {
  readonly direction: string
  readonly src_ip: string
  readonly dst_ip: string
  readonly port: number | null
  readonly proto: number
  readonly icmp_type: number | null
  readonly icmp_code: number | null
  readonly policy_decision: string
  readonly rule_href: string | null
  readonly dropped_downstream: number
  readonly num_connections: number
  readonly first_seen: string
  readonly last_seen: string
}

/** What one end reported of a connection. */
export interface EndReport {
  readonly policy_decision: string
  readonly rule_href: string | null
  readonly dropped_downstream: boolean
  readonly num_connections: number
  readonly first_detected: string
  readonly last_detected: string
}

/** A connection as one record, with each end's report (null: that end did not report it). */
export interface MergedFlow {
  readonly src_ip: string
  readonly dst_ip: string
  readonly port: number | null
  readonly proto: number
  readonly icmp_type: number | null
  readonly icmp_code: number | null
  /** The destination's decision when it reported the connection, else the source's. */
  readonly policy_decision: string
  /** The rule behind that decision. */
  readonly rule_href: string | null
  /** Either end saw a later firewall on its host drop what our policy passed. */
  readonly dropped_downstream: boolean
  /** Counted once: the larger of the two ends' counts (see `mergeReports`). */
  readonly num_connections: number
  readonly first_seen: string
  readonly last_seen: string
  /** `inbound` when the destination reported it, `outbound` when only the source did. */
  readonly flow_direction: 'inbound' | 'outbound'
  readonly reports: { readonly source: EndReport | null; readonly destination: EndReport | null }
}

const report = (f: AggregatedFlow): EndReport => ({
  policy_decision: f.policy_decision,
  rule_href: f.rule_href,
  dropped_downstream: f.dropped_downstream === 1,
  num_connections: f.num_connections,
  first_detected: f.first_seen,
  last_detected: f.last_seen,
})

/** One end's report alone. */
function alone(f: AggregatedFlow): MergedFlow {
  const inbound = f.direction === 'inbound'
  return {
    ...key(f),
    policy_decision: f.policy_decision,
    rule_href: f.rule_href,
    dropped_downstream: f.dropped_downstream === 1,
    num_connections: f.num_connections,
    first_seen: f.first_seen,
    last_seen: f.last_seen,
    flow_direction: inbound ? 'inbound' : 'outbound',
    reports: { source: inbound ? null : report(f), destination: inbound ? report(f) : null },
  }
}

const key = (f: AggregatedFlow) => ({
  src_ip: f.src_ip,
  dst_ip: f.dst_ip,
  port: f.port,
  proto: f.proto,
  icmp_type: f.icmp_type,
  icmp_code: f.icmp_code,
})
const keyText = (f: AggregatedFlow) =>
  [f.src_ip, f.dst_ip, f.port, f.proto, f.icmp_type, f.icmp_code].join('|')

/** How long two reports' time ranges share, in ms (negative: the gap between them). */
const overlap = (a: AggregatedFlow, b: AggregatedFlow) =>
  Math.min(Date.parse(a.last_seen), Date.parse(b.last_seen)) -
  Math.max(Date.parse(a.first_seen), Date.parse(b.first_seen))

const byTime = (a: AggregatedFlow, b: AggregatedFlow) =>
  a.first_seen < b.first_seen
    ? -1
    : a.first_seen > b.first_seen
      ? 1
      : a.policy_decision.localeCompare(b.policy_decision)

/**
 * Merges the two ends' reports of each connection (same addresses, port, protocol, ICMP type
 * and code). A connection the source blocked never reached the destination: that report stays
 * alone. Each destination report pairs with the source report whose time range it shares most
 * (they differ only where an end's decision changed within the range); a source report no
 * destination report took stays alone. A pair counts the larger of its two counts, or, when
 * one source report pairs with several destination reports, each destination's count, so that
 * no connection is counted twice.
 */
export function mergeReports(rows: readonly AggregatedFlow[]): MergedFlow[] {
  const byKey = new Map<string, { out: AggregatedFlow[]; in: AggregatedFlow[] }>()
  for (const r of rows) {
    const k = keyText(r)
    const g = byKey.get(k) ?? { out: [], in: [] }
    ;(r.direction === 'inbound' ? g.in : g.out).push(r)
    byKey.set(k, g)
  }
  const merged: MergedFlow[] = []
  for (const g of byKey.values()) {
    g.in.sort(byTime)
    g.out.sort(byTime)
    const passed = g.out.filter((o) => o.policy_decision !== 'blocked')
    for (const o of g.out) if (o.policy_decision === 'blocked') merged.push(alone(o))
    const partner = new Map<AggregatedFlow, AggregatedFlow>()
    for (const i of g.in) {
      let best: AggregatedFlow | undefined
      for (const o of passed) if (!best || overlap(o, i) > overlap(best, i)) best = o
      if (best) partner.set(i, best)
      else merged.push(alone(i))
    }
    const partners = new Map<AggregatedFlow, number>()
    for (const o of partner.values()) partners.set(o, (partners.get(o) ?? 0) + 1)
    for (const [i, o] of partner) {
      merged.push({
        ...key(i),
        policy_decision: i.policy_decision,
        rule_href: i.rule_href,
        dropped_downstream: i.dropped_downstream === 1 || o.dropped_downstream === 1,
        num_connections:
          partners.get(o) === 1
            ? Math.max(i.num_connections, o.num_connections)
            : i.num_connections,
        first_seen: i.first_seen < o.first_seen ? i.first_seen : o.first_seen,
        last_seen: i.last_seen > o.last_seen ? i.last_seen : o.last_seen,
        flow_direction: 'inbound',
        reports: { source: report(o), destination: report(i) },
      })
    }
    for (const o of passed) if (!partners.has(o)) merged.push(alone(o))
  }
  return merged
}
