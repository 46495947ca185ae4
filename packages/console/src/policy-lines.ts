import type { Names, Port } from './policy-text.js'
import { portsText, servicesText, sideText } from './policy-text.js'

/**
 * A policy object as lines people read, one fact a line, so two versions of it compare line by
 * line: what provisioning adds, removes and keeps. Pure.
 */

type Doc = Record<string, unknown>
const list = (x: unknown): Doc[] =>
  Array.isArray(x) ? x.filter((y): y is Doc => typeof y === 'object' && y !== null) : []
const hrefs = (x: unknown) => list(x).map((r) => (typeof r.href === 'string' ? r.href : ''))

const ruleLine = (r: Doc, action: string, names: Names) =>
  `${action} ${sideText(list(r.consumers), names)} → ${sideText(list(r.providers), names)} on ${servicesText(list(r.ingress_services) as (Port | { href: string })[], names)}${
    r.unscoped_consumers === true ? ' (sources outside the scope too)' : ''
  }${r.enabled === false ? ' (disabled)' : ''}`

const labelsText = (refs: string[], names: Names) =>
  refs.length === 0 ? 'all workloads' : refs.map((h) => names(h) ?? 'deleted label').join(', ')

/** A rule set's scope: its labels and label groups, an excluded one as "not ...". */
const scopeText = (scope: unknown, names: Names) => {
  const entries = list(scope)
  if (entries.length === 0) return 'all workloads'
  return entries
    .map((e) => {
      const inner = (e.label ?? e.label_group ?? e) as Doc
      const name = (typeof inner.href === 'string' && names(inner.href)) || 'deleted label'
      return e.exclusion === true ? `not ${name}` : name
    })
    .join(', ')
}

export function policyLines(type: string, doc: Doc | null, names: Names): string[] {
  if (doc === null) return []
  const name = typeof doc.name === 'string' ? [`Name: ${doc.name}`] : []
  switch (type) {
    case 'rule_sets': {
      const scopes = Array.isArray(doc.scopes) ? (doc.scopes as unknown[]) : []
      return [
        ...name,
        scopes.length === 0
          ? 'Scope: all workloads'
          : `Scope: ${scopes.map((s) => scopeText(s, names)).join(' or ')}`,
        ...(doc.enabled === false ? ['Disabled'] : []),
        ...list(doc.deny_rules).map((r) =>
          ruleLine(r, r.override === true ? 'Override deny' : 'Deny', names),
        ),
        ...list(doc.rules).map((r) => ruleLine(r, 'Allow', names)),
      ]
    }
    case 'services':
      return [...name, `Ports: ${portsText(list(doc.service_ports) as unknown as Port[])}`]
    case 'ip_lists':
      return [
        ...name,
        ...list(doc.ip_ranges).map(
          (r) =>
            `${r.exclusion === true ? 'Excludes' : 'Range'}: ${String(r.from_ip)}${
              typeof r.to_ip === 'string' ? ` to ${r.to_ip}` : ''
            }`,
        ),
      ]
    case 'label_groups':
      return [
        ...name,
        `Key: ${String(doc.key)}`,
        `Labels: ${hrefs(doc.labels)
          .map((h) => names(h) ?? 'deleted label')
          .join(', ')}`,
        ...(hrefs(doc.sub_groups).length > 0
          ? [
              `Groups: ${hrefs(doc.sub_groups)
                .map((h) => names(h) ?? 'deleted group')
                .join(', ')}`,
            ]
          : []),
      ]
    case 'enforcement_boundaries':
      return [...name, ruleLine(doc, 'Deny', names)]
    case 'firewall_settings':
      return [
        ...list(doc.firewall_coexistence).map(
          (i, k) =>
            `Coexistence scope #${k + 1}: ${labelsText(hrefs(i.scope), names)}; enforcement ${
              i.workload_mode === 'enforced'
                ? 'Enforced'
                : i.workload_mode === 'illuminated'
                  ? 'Illuminated'
                  : 'All'
            }; Palisade primary: ${i.illumio_primary === true ? 'Yes' : 'No'}`,
        ),
        ...(
          [
            ['blocked_connection_reject_scopes', 'Reject blocked connections'],
            ['loopback_interfaces_in_policy_scopes', 'Loopback in policy'],
            ['static_policy_scopes', 'Static policy'],
            ['containers_inherit_host_policy_scopes', 'Containers inherit host policy'],
          ] as const
        ).flatMap(([k, text]) =>
          (Array.isArray(doc[k]) ? (doc[k] as unknown[]) : []).map(
            (s) => `${text}: ${scopeText(s, names)}`,
          ),
        ),
      ]
    default:
      return [...name]
  }
}

export interface DiffLine {
  readonly text: string
  readonly change: 'added' | 'removed' | 'same'
}

/** Active against draft, line by line: removed lines where they stood, then the added ones. */
export function diffLines(before: readonly string[], after: readonly string[]): DiffLine[] {
  const inAfter = new Set(after)
  const inBefore = new Set(before)
  const out: DiffLine[] = []
  for (const t of before) out.push({ text: t, change: inAfter.has(t) ? 'same' : 'removed' })
  for (const t of after) if (!inBefore.has(t)) out.push({ text: t, change: 'added' })
  return out
}
