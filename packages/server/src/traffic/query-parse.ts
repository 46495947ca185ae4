/** Traffic queries (Explorer's async queries): the body parsed and checked. Pure. */
import type { PolicyDecision } from '@palisade/model'
import { normaliseCidr, POLICY_DECISIONS } from '@palisade/model'
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'

export type ActorRef =
  | { readonly kind: 'label' | 'label_group' | 'workload' | 'ip_list'; readonly href: string }
  | { readonly kind: 'ip_address'; readonly cidr: string }
  | { readonly kind: 'ams' }
  | { readonly kind: 'transmission'; readonly value: string }
  /** A name, matched by the addresses the server resolves it to (filled in before running). */
  | { readonly kind: 'fqdn'; readonly name: string; readonly addresses: readonly string[] }

export interface Side {
  /** OR of ANDs; empty: anything. */
  readonly include: readonly (readonly ActorRef[])[]
  readonly exclude: readonly ActorRef[]
}

export interface ServiceFilter {
  readonly proto?: number
  readonly port?: number
  readonly toPort?: number
  /** ICMP (1) or ICMPv6 (58) only. */
  readonly icmpType?: number
  readonly icmpCode?: number
}

/** The vendor's boundary decisions, and what each is in Palisade's flow records. */
export const BOUNDARY_DECISIONS = [
  'blocked',
  'blocked_by_override_deny',
  'blocked_non_illumio_rule',
] as const
export type BoundaryDecision = (typeof BOUNDARY_DECISIONS)[number]

export interface TrafficQuery {
  readonly queryName: string
  readonly startDate: string
  readonly endDate: string
  readonly sources: Side
  readonly destinations: Side
  readonly services: {
    readonly include: readonly ServiceFilter[]
    readonly exclude: readonly ServiceFilter[]
  }
  readonly policyDecisions: readonly PolicyDecision[]
  readonly boundaryDecisions: readonly BoundaryDecision[]
  readonly maxResults: number
  readonly op: 'and' | 'or'
  readonly excludeWorkloadsFromIpListQuery: boolean
}

/** The vendor's cap for async queries. */
export const MAX_QUERY_RESULTS = 200_000

const QUERY_KEYS = [
  'query_name',
  'start_date',
  'end_date',
  'sources',
  'destinations',
  'services',
  'policy_decisions',
  'boundary_decisions',
  'max_results',
  'sources_destinations_query_op',
  'exclude_workloads_from_ip_list_query',
]

/** Which side an actor is on: only a destination can be named by FQDN, as the vendor's. */
type SideName = 'sources' | 'destinations'

const FQDN =
  /^(?=.{1,253}$)([A-Za-z0-9_*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

function actorOf(
  c: Checker,
  x: unknown,
  path: string,
  exclude: boolean,
  side: SideName,
): ActorRef | undefined {
  const o = c.object(x, path)
  if (!o) return undefined
  const keys = Object.keys(o)
  if (keys.length !== 1)
    return c.fail(
      path,
      `must have exactly one of label, label_group, workload, ip_list, ip_address, actors${side === 'destinations' ? ', fqdn' : ''}`,
    )
  const key = keys[0] as string
  const v = o[key]
  switch (key) {
    case 'label':
    case 'label_group':
    case 'workload':
    case 'ip_list': {
      const href = c.hrefRef(v, `${path}.${key}`)
      return href === undefined ? undefined : { kind: key, href }
    }
    case 'ip_address': {
      // The Python SDK sends a string, the Go SDK {"value": "..."}.
      const text = typeof v === 'string' ? v : isObj(v) ? v.value : undefined
      if (typeof text !== 'string')
        return c.fail(`${path}.ip_address`, 'must be an address or CIDR')
      try {
        return { kind: 'ip_address', cidr: normaliseCidr(text) }
      } catch {
        return c.fail(`${path}.ip_address`, `"${text}" is not an IP address or CIDR`)
      }
    }
    case 'actors':
      return v === 'ams' ? { kind: 'ams' } : c.fail(`${path}.actors`, 'must be "ams"')
    case 'transmission':
      if (!exclude) return c.fail(path, 'transmission can only be excluded')
      return ['unicast', 'broadcast', 'multicast'].includes(String(v))
        ? { kind: 'transmission', value: String(v) }
        : c.fail(`${path}.transmission`, 'must be unicast, broadcast or multicast')
    case 'fqdn':
      if (side !== 'destinations')
        return c.fail(`${path}.fqdn`, 'only a destination can be named by FQDN')
      if (typeof v !== 'string' || !FQDN.test(v))
        return c.fail(`${path}.fqdn`, 'must be a host name such as db.example.com')
      return { kind: 'fqdn', name: v.toLowerCase().replace(/\.$/, ''), addresses: [] }
    default:
      return c.fail(path, `unknown actor "${key}"`)
  }
}

function sideOf(c: Checker, x: unknown, side: SideName): Side {
  const path = `$.${side}`
  if (x === undefined) return { include: [], exclude: [] }
  const o = c.object(x, path)
  if (!o) return { include: [], exclude: [] }
  c.only(o, path, ['include', 'exclude'])
  const include = (c.array(o, 'include', path, { max: 1000 }) ?? []).flatMap((group, i) => {
    if (!Array.isArray(group)) {
      c.fail(`${path}.include[${i}]`, 'must be a list of actors (the inner lists are ANDed)')
      return []
    }
    return [
      group.flatMap((a, j) => {
        const r = actorOf(c, a, `${path}.include[${i}][${j}]`, false, side)
        return r ? [r] : []
      }),
    ]
  })
  const exclude = (c.array(o, 'exclude', path, { max: 1000 }) ?? []).flatMap((a, i) => {
    const r = actorOf(c, a, `${path}.exclude[${i}]`, true, side)
    return r ? [r] : []
  })
  return { include: include.filter((g) => g.length > 0), exclude }
}

function servicesOf(c: Checker, x: unknown): TrafficQuery['services'] {
  if (x === undefined) return { include: [], exclude: [] }
  const o = c.object(x, '$.services')
  if (!o) return { include: [], exclude: [] }
  c.only(o, '$.services', ['include', 'exclude'])
  const list = (key: 'include' | 'exclude') =>
    (c.array(o, key, '$.services', { max: 1000 }) ?? []).flatMap((s, i): ServiceFilter[] => {
      const path = `$.services.${key}[${i}]`
      const so = c.object(s, path)
      if (!so) return []
      c.only(so, path, [
        'port',
        'to_port',
        'proto',
        'icmp_type',
        'icmp_code',
        'process_name',
        'windows_service_name',
        'user_name',
      ])
      for (const k of ['process_name', 'windows_service_name', 'user_name'])
        if (so[k] !== undefined && so[k] !== null)
          c.fail(`${path}.${k}`, 'is not supported: flows are recorded by port and protocol')
      const proto = c.int(so, 'proto', path, { min: -1, max: 255, nullable: true })
      const port = c.int(so, 'port', path, { min: 0, max: 65535, nullable: true })
      const toPort = c.int(so, 'to_port', path, { min: 0, max: 65535, nullable: true })
      if (port !== undefined && toPort !== undefined && toPort < port)
        c.fail(`${path}.to_port`, 'must not be below port')
      const icmpType = c.int(so, 'icmp_type', path, { min: 0, max: 255, nullable: true })
      const icmpCode = c.int(so, 'icmp_code', path, { min: 0, max: 255, nullable: true })
      const icmp = icmpType !== undefined || icmpCode !== undefined
      if (icmp && proto !== undefined && proto !== 1 && proto !== 58)
        c.fail(`${path}.proto`, 'must be 1 (ICMP) or 58 (ICMPv6) with icmp_type or icmp_code')
      if (icmp && (port !== undefined || toPort !== undefined))
        c.fail(`${path}.port`, 'ICMP has no ports: give icmp_type and icmp_code, or a port')
      return [
        {
          ...(proto !== undefined && proto !== -1 && { proto }),
          ...(port !== undefined && { port }),
          ...(toPort !== undefined && { toPort }),
          ...(icmpType !== undefined && { icmpType }),
          ...(icmpCode !== undefined && { icmpCode }),
        },
      ]
    })
  return { include: list('include'), exclude: list('exclude') }
}

function dateOf(c: Checker, o: Doc, key: string, fallback: string): string {
  const v = c.string(o, key, '$', { max: 64 })
  if (v === undefined) return fallback
  const t = Date.parse(v)
  if (Number.isNaN(t)) return c.fail(`$.${key}`, 'must be an RFC 3339 time') ?? fallback
  return new Date(t).toISOString()
}

/** The names a query's destinations give by FQDN (to resolve before it runs). */
export function fqdnsOf(q: TrafficQuery): string[] {
  const all = [...q.destinations.include.flat(), ...q.destinations.exclude]
  return [...new Set(all.flatMap((a) => (a.kind === 'fqdn' ? [a.name] : [])))]
}

/** The query with each FQDN actor's addresses filled in. */
export function withAddresses(
  q: TrafficQuery,
  addresses: ReadonlyMap<string, readonly string[]>,
): TrafficQuery {
  const fill = (a: ActorRef): ActorRef =>
    a.kind === 'fqdn' ? { ...a, addresses: addresses.get(a.name) ?? [] } : a
  return {
    ...q,
    destinations: {
      include: q.destinations.include.map((g) => g.map(fill)),
      exclude: q.destinations.exclude.map(fill),
    },
  }
}

/** Checks a query body; every problem is reported at once (406). */
export function parseTrafficQuery(body: Doc, nowIso: string): TrafficQuery {
  const c = new Checker()
  c.only(body, '$', QUERY_KEYS)
  const startDate = dateOf(c, body, 'start_date', new Date(0).toISOString())
  const endDate = dateOf(c, body, 'end_date', nowIso)
  if (startDate > endDate) c.fail('$.end_date', 'must not be before start_date')
  // The Go SDK sends null for "any decision".
  const decisions = c.array(body, 'policy_decisions', '$', { max: 4, nullable: true }) ?? []
  decisions.forEach((d, i) => {
    if (!POLICY_DECISIONS.includes(d as PolicyDecision))
      c.fail(`$.policy_decisions[${i}]`, `must be one of ${POLICY_DECISIONS.join(', ')}`)
  })
  const boundary = c.array(body, 'boundary_decisions', '$', { max: 3, nullable: true }) ?? []
  boundary.forEach((d, i) => {
    if (!BOUNDARY_DECISIONS.includes(d as BoundaryDecision))
      c.fail(`$.boundary_decisions[${i}]`, `must be one of ${BOUNDARY_DECISIONS.join(', ')}`)
  })
  const q: TrafficQuery = {
    queryName: c.string(body, 'query_name', '$', { max: 255 }) ?? '',
    startDate,
    endDate,
    sources: sideOf(c, body.sources, 'sources'),
    destinations: sideOf(c, body.destinations, 'destinations'),
    services: servicesOf(c, body.services),
    policyDecisions: decisions as PolicyDecision[],
    boundaryDecisions: boundary as BoundaryDecision[],
    maxResults:
      c.int(body, 'max_results', '$', { min: 1, max: MAX_QUERY_RESULTS }) ?? MAX_QUERY_RESULTS,
    op: c.oneOf(body, 'sources_destinations_query_op', '$', ['and', 'or']) ?? 'and',
    excludeWorkloadsFromIpListQuery:
      c.bool(body, 'exclude_workloads_from_ip_list_query', '$') ?? true,
  }
  c.done()
  return q
}
