/**
 * The vendor's filters of the policy object collections (label groups, services, IP lists,
 * rule sets, enforcement boundaries), applied to an object's document. Pure.
 */
import { addressSetOf, cidrsToIntervals, cidrToInterval, mergeIntervals } from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { ObjectType } from '../policy/types.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
import type { Filters } from './query-filters.js'

const list = (x: unknown): Doc[] => (Array.isArray(x) ? x.filter(isObj) : [])
const num = (x: unknown): number | undefined => (typeof x === 'number' ? x : undefined)

/** A port entry's range; an entry without a port (all ports, ICMP) covers every port. */
const rangeOf = (e: Doc) => {
  const from = num(e.port)
  return from === undefined || from === -1
    ? { from: -1, to: 65535 }
    : { from, to: num(e.to_port) ?? from }
}

/** Whether a list of port entries has one that passes the port and protocol filters. */
function portsMatch(f: Filters, entries: readonly Doc[], port: string, proto: string): boolean {
  if (!f.has(port) && !f.has(proto)) return true
  const wanted = f.int(proto)
  return entries.some(
    (e) =>
      f.portOverlaps(port, [rangeOf(e)]) &&
      (wanted === undefined || num(e.proto) === wanted || (num(e.proto) ?? -1) === -1),
  )
}

/** The label hrefs of a scope or an actor list (`{label: {href}}` entries). */
const labelHrefs = (entries: readonly Doc[]) =>
  entries.flatMap((e) => (isObj(e.label) && typeof e.label.href === 'string' ? [e.label.href] : []))

/** An IP list's ranges hold an address or CIDR (exclusions honoured), or name other text. */
function ipListHas(doc: Doc, wanted: string): boolean {
  const ranges = list(doc.ip_ranges)
  let asked: ReturnType<typeof cidrToInterval>
  try {
    asked = cidrToInterval(wanted)
  } catch {
    const w = wanted.toLowerCase()
    return ranges.some((r) =>
      [r.from_ip, r.to_ip].some((x) => typeof x === 'string' && x.toLowerCase().includes(w)),
    )
  }
  const set = addressSetOf(
    ranges.map((r) => ({
      from: String(r.from_ip),
      ...(typeof r.to_ip === 'string' && { to: r.to_ip }),
      ...(r.exclusion === true && { exclusion: true }),
    })),
  )
  const held = mergeIntervals(cidrsToIntervals(asked.family === 4 ? set.v4 : set.v6))
  return held.some((i) => i.lo <= asked.interval.lo && asked.interval.hi <= i.hi)
}

/** Whether a policy object of a type passes the collection's filters. */
export function policyObjectMatches(f: Filters, type: ObjectType, doc: Doc): boolean {
  const text = (k: string) => f.text(k, typeof doc[k] === 'string' ? doc[k] : null)
  const common =
    text('name') &&
    text('description') &&
    text('external_data_set') &&
    text('external_data_reference')
  if (!common) return false
  switch (type) {
    case 'virtual_services':
      return true
    case 'label_groups':
      return text('key')
    case 'services':
      return (
        f.bool('is_ransomware') !== true &&
        portsMatch(f, [...list(doc.service_ports), ...list(doc.windows_services)], 'port', 'proto')
      )
    case 'ip_lists': {
      const ip = f.string('ip_address')
      return (
        (ip === undefined || ipListHas(doc, ip)) &&
        f.textAny(
          'fqdn',
          list(doc.fqdns).map((x) => (typeof x.fqdn === 'string' ? x.fqdn : null)),
        )
      )
    }
    case 'rule_sets': {
      const scopes = Array.isArray(doc.scopes) ? doc.scopes.map((s) => labelHrefs(list(s))) : []
      const within = f.list('labels_scope')
      return (
        f.labelsMatch((h) => scopes.some((s) => s.includes(h))) &&
        (within === undefined || scopes.some((s) => s.every((h) => within.includes(h))))
      )
    }
    case 'enforcement_boundaries': {
      const actors = labelHrefs([...list(doc.providers), ...list(doc.consumers)])
      const services = list(doc.ingress_services)
      const service = f.string('service')
      return (
        f.labelsMatch((h) => actors.includes(h)) &&
        f.is('network_type', typeof doc.network_type === 'string' ? doc.network_type : 'brn') &&
        (service === undefined ||
          services.some(
            (s) => typeof s.href === 'string' && draftHref(s.href) === draftHref(service),
          )) &&
        portsMatch(
          f,
          services.filter((s) => s.href === undefined),
          'service_ports.port',
          'service_ports.proto',
        )
      )
    }
  }
}

/** Whether a rule passes its collection's filters (its external data, exactly). */
export function ruleMatches(f: Filters, rule: Doc): boolean {
  const text = (k: string) => f.text(k, typeof rule[k] === 'string' ? rule[k] : null)
  return text('external_data_set') && text('external_data_reference')
}
