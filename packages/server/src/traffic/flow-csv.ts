/**
 * Flow records as CSV, for clients that export them (workloader's traffic command writes the
 * rows it reads as they are). Palisade's columns; one row per record, a header row first. Pure.
 */
import type { FlowRecord } from './flow-match.js'

type Endpoint = FlowRecord['src']

const labelsText = (e: Endpoint) =>
  (e.workload?.labels ?? []).map((l) => `${l.key}:${l.value}`).join(';')

/** A CSV field: quoted when it holds a comma, a quote or a line break. */
const field = (x: string | number | boolean | null | undefined) => {
  const s = x === null || x === undefined ? '' : String(x)
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/** Who reported a record: `source`, `destination` or `both`. */
const reportedBy = (f: FlowRecord) =>
  f.reports.source && f.reports.destination ? 'both' : f.reports.source ? 'source' : 'destination'

type Row = FlowRecord & { draft_policy_decision?: string }
type Column = readonly [
  name: string,
  value: (f: Row) => string | number | boolean | null | undefined,
]

export function flowsCsv(records: readonly Row[], withDraft: boolean): string {
  const draft: Column[] = withDraft
    ? [['draft_policy_decision', (f) => f.draft_policy_decision]]
    : []
  const columns: Column[] = [
    ['src_ip', (f) => f.src.ip],
    ['src_hostname', (f) => f.src.workload?.hostname],
    ['src_workload_href', (f) => f.src.workload?.href],
    ['src_labels', (f) => labelsText(f.src)],
    ['dst_ip', (f) => f.dst.ip],
    ['dst_hostname', (f) => f.dst.workload?.hostname],
    ['dst_workload_href', (f) => f.dst.workload?.href],
    ['dst_labels', (f) => labelsText(f.dst)],
    ['port', (f) => f.service.port],
    ['proto', (f) => f.service.proto],
    ['icmp_type', (f) => f.icmp_type],
    ['icmp_code', (f) => f.icmp_code],
    ['num_connections', (f) => f.num_connections],
    ['policy_decision', (f) => f.policy_decision],
    ...draft,
    ['flow_direction', (f) => f.flow_direction],
    ['reported_by', reportedBy],
    ['rule_href', (f) => f.rule_href],
    ['dropped_downstream', (f) => f.dropped_downstream],
    ['first_detected', (f) => f.timestamp_range.first_detected],
    ['last_detected', (f) => f.timestamp_range.last_detected],
    ['transmission', (f) => f.transmission],
  ]
  const lines = [
    columns.map(([name]) => name).join(','),
    ...records.map((f) => columns.map(([, get]) => field(get(f))).join(',')),
  ]
  return `${lines.join('\r\n')}\r\n`
}
