import type { AddressSet, ServicePort } from '@palisade/model'
import { protoName } from './names.js'

/**
 * Policy objects as people read them: ports, rule sides and services by name. Pure; the pages,
 * the provision diff and the workload's rules all say things the same way.
 */

export interface Port {
  proto: number
  port?: number
  to_port?: number
  icmp_type?: number
  icmp_code?: number
}

const PROTOS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, any: -1 }

export interface PortsParse {
  readonly ports: Port[]
  /** What could not be read, one message per entry. */
  readonly problems: string[]
}

/** `tcp/443, udp/53, tcp/8000-8010, icmp` (or protocol numbers) to service ports. */
export function parsePortsChecked(text: string): PortsParse {
  const ports: Port[] = []
  const problems: string[] = []
  for (const s of text
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const [p = '', range, ...rest] = s.split('/')
    const proto = PROTOS[p.toLowerCase()] ?? (/^\d+$/.test(p) ? Number(p) : NaN)
    const [from, to, ...more] = (range ?? '').split('-')
    const num = (x: string | undefined) => (x === undefined || x === '' ? undefined : Number(x))
    const port = num(from)
    const toPort = num(to)
    const bad = (n: number | undefined) => n !== undefined && !(Number.isInteger(n) && n >= 0)
    if (Number.isNaN(proto) || rest.length > 0 || more.length > 0 || bad(port) || bad(toPort)) {
      problems.push(`"${s}" is not a port: write it as tcp/443, udp/53, tcp/8000-8010 or icmp`)
      continue
    }
    ports.push({
      proto,
      ...(port !== undefined && { port }),
      ...(toPort !== undefined && { to_port: toPort }),
    })
  }
  return { ports, problems }
}

export const parsePorts = (text: string): Port[] => parsePortsChecked(text).ports

export const portText = (p: Port) =>
  `${protoName(p.proto)}${p.port !== undefined ? `/${p.port}${p.to_port !== undefined ? `-${p.to_port}` : ''}` : ''}${p.icmp_type !== undefined ? ` type ${p.icmp_type}${p.icmp_code !== undefined ? ` code ${p.icmp_code}` : ''}` : ''}`
export const portsText = (ports: readonly Port[]) => ports.map(portText).join(', ')

/** A model service port (from a computed host policy) in the same words. */
export const modelPortText = (p: ServicePort) =>
  p.proto === -1
    ? 'all services'
    : portText({
        proto: p.proto,
        ...(p.port !== undefined && { port: p.port }),
        ...(p.toPort !== undefined && { to_port: p.toPort }),
        ...(p.icmpType !== undefined && { icmp_type: p.icmpType }),
        ...(p.icmpCode !== undefined && { icmp_code: p.icmpCode }),
      })

/** One side of a rule as the API holds it: all workloads, or references by href. */
export interface Actor {
  actors?: string
  label?: { href: string }
  label_group?: { href: string }
  ip_list?: { href: string }
  workload?: { href: string }
  virtual_service?: { href: string }
  /** A label or label group the side leaves out (it names the others of that type). */
  exclusion?: boolean
}
export const ACTOR_KINDS = [
  'label',
  'label_group',
  'ip_list',
  'workload',
  'virtual_service',
] as const
export type ActorKind = (typeof ACTOR_KINDS)[number]

export const actorHref = (a: Actor) => ACTOR_KINDS.map((k) => a[k]?.href).find(Boolean)
/** Names by href: labels as `key: value`, the rest by name. */
export type Names = (href: string) => string | undefined

const KIND_WORD: Record<ActorKind, string> = {
  label: 'label',
  label_group: 'label group',
  ip_list: 'IP list',
  workload: 'workload',
  virtual_service: 'virtual service',
}

export function actorText(a: Actor, names: Names): string {
  if (a.actors === 'ams') return 'All workloads'
  const kind = ACTOR_KINDS.find((k) => a[k])
  const href = actorHref(a)
  if (!kind || !href) return 'nothing'
  const name = names(href)
  const text = !name
    ? `${KIND_WORD[kind]} ${href} (deleted)`
    : kind === 'label' || kind === 'workload'
      ? name
      : `${name} (${KIND_WORD[kind]})`
  return a.exclusion ? `not ${text}` : text
}

/** A label type's labels in a side: its name, the labels it includes, those it excludes. */
type TypePart = [string, { included: string[]; excluded: string[] }]

/** A label's type from its name (`key: value`); a label group's is given, or its own. */
const typeByName = (names: Names) => (href: string) => names(href)?.split(': ')[0]

/**
 * A rule side in words, the way it matches (the vendor's): labels of one type are alternatives,
 * types must all hold, an excluded label leaves out what carries it; workloads, IP lists and
 * virtual services are alternatives to all that. `typeOf` names label groups' types.
 */
export function sideText(
  actors: readonly Actor[],
  names: Names,
  typeOf: (href: string) => string | undefined = typeByName(names),
): string {
  if (actors.length === 0) return 'nothing'
  const types = new Map<string, TypePart[1]>()
  // the labels read as one part, where the first of them is; null marks it
  const parts: (string | null)[] = []
  for (const a of actors) {
    const href = a.label?.href ?? a.label_group?.href
    if (href === undefined) {
      parts.push(actorText(a, names))
      continue
    }
    if (!parts.includes(null)) parts.push(null)
    const type = typeOf(href) ?? href
    const t = types.get(type) ?? { included: [], excluded: [] }
    types.set(type, t)
    ;(a.exclusion ? t.excluded : t.included).push(actorText({ ...a, exclusion: false }, names))
  }
  const typeText = ([type, t]: TypePart) => {
    const some = t.included.length === 0 ? `any ${type}` : t.included.join(' or ')
    const but = t.excluded.length === 0 ? '' : ` except ${t.excluded.join(', ')}`
    return t.included.length > 1 && types.size > 1 ? `(${some}${but})` : `${some}${but}`
  }
  return parts.map((p) => p ?? labelPartText([...types], typeText)).join(' or ')
}

/**
 * The label part of a side. Where no type names included labels, it reads as "all workloads
 * with a role label except role: db": the vendor's "all except", which still needs a label of
 * the type, so an unlabelled workload stays out.
 */
function labelPartText(types: TypePart[], typeText: (t: TypePart) => string) {
  if (types.some(([, t]) => t.included.length > 0)) return types.map(typeText).join(' and ')
  const keys = types.map(([type]) => type)
  const labelled =
    keys.length === 1
      ? `${/^[aeiou]/i.test(keys[0] ?? '') ? 'an' : 'a'} ${keys[0]} label`
      : `${keys.slice(0, -1).join(', ')} and ${keys.at(-1)} labels`
  return `all workloads with ${labelled} except ${types.flatMap(([, t]) => t.excluded).join(', ')}`
}

/** A rule's services: named services by name, ports as written; none means all services. */
export function servicesText(services: readonly (Port | { href: string })[], names: Names) {
  if (services.length === 0) return 'All services'
  return services
    .map((s) =>
      'href' in s
        ? (names(s.href) ?? `service ${s.href} (deleted)`)
        : s.proto === -1 && s.port === undefined
          ? 'All services'
          : portText(s),
    )
    .join(', ')
}

/** An address set from a computed host policy, shortly: `any`, or its first CIDRs. */
export function addressesText(peers: AddressSet | 'any', max = 4): string {
  if (peers === 'any') return 'any address'
  const all = [...peers.v4, ...peers.v6]
  if (all.length === 0) return 'no address'
  return all.length <= max ? all.join(', ') : `${all.slice(0, max).join(', ')} +${all.length - max}`
}
