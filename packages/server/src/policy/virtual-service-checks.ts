/**
 * Virtual services (provisionable) and their bindings to workloads (not provisioned), in the
 * vendor API's shapes, checked on write. What Palisade enforces of them: docs/policy-semantics.md.
 */
import { addressSetOf, IpParseError } from '@palisade/model'
import { draftHref } from '../hrefs.js'
import type { Checker, Doc } from '../validate.js'
import type { RefIndex } from './rule-checks.js'
import { UNSUPPORTED } from './rule-checks.js'

/** The ports of a virtual service: TCP or UDP, a port (-1: any) and maybe a range. */
function virtualServicePorts(c: Checker, list: unknown[] | undefined, path: string): Doc[] {
  if (list && list.length === 0) c.fail(path, 'must hold at least one port')
  return (list ?? []).flatMap((x, i) => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return []
    c.only(o, p, ['port', 'to_port', 'proto'])
    const proto = c.int(o, 'proto', p, { required: true })
    if (proto !== undefined && proto !== 6 && proto !== 17)
      c.fail(`${p}.proto`, 'must be 6 (TCP) or 17 (UDP)')
    const port = c.int(o, 'port', p, { min: -1, max: 65535 })
    const to = c.int(o, 'to_port', p, { min: 0, max: 65535 })
    if (to !== undefined && (port === undefined || port < 0 || to <= port))
      c.fail(`${p}.to_port`, 'must be greater than port')
    return [
      { proto, ...(port !== undefined && { port }), ...(to !== undefined && { to_port: to }) },
    ]
  })
}

function ipOrCidr(c: Checker, x: unknown, p: string): string | undefined {
  if (typeof x !== 'string') return c.fail(p, 'must be an IP address or CIDR block')
  try {
    addressSetOf([{ from: x }])
    return x
  } catch (e) {
    if (e instanceof IpParseError) return c.fail(p, e.message, 'invalid_ip_range')
    throw e
  }
}

function serviceAddresses(c: Checker, list: unknown[] | undefined, path: string): Doc[] {
  return (list ?? []).flatMap((x, i): Doc[] => {
    const p = `${path}[${i}]`
    const o = c.object(x, p)
    if (!o) return []
    const port = c.int(o, 'port', p, { min: 1, max: 65535 })
    if (o.fqdn !== undefined) {
      c.only(o, p, ['fqdn', 'description', 'port'])
      const fqdn = c.string(o, 'fqdn', p, { required: true, max: 255 })
      const description = c.string(o, 'description', p, { max: 1024 })
      return [
        {
          fqdn,
          ...(description !== undefined && { description }),
          ...(port !== undefined && { port }),
        },
      ]
    }
    c.only(o, p, ['ip', 'network', 'port'])
    if (o.network !== undefined)
      c.fail(
        `${p}.network`,
        'Palisade has no network objects: give the port the service is reached on instead',
        UNSUPPORTED,
      )
    const ip = c.string(o, 'ip', p, { required: true, max: 64 })
    if (ip !== undefined && ipOrCidr(c, ip, `${p}.ip`) !== undefined && ip.includes('/'))
      c.fail(`${p}.ip`, 'must be one IP address; use ip_overrides for a block')
    if (port === undefined && o.network === undefined)
      c.fail(p, 'an IP service address needs the port it is reached on')
    return [{ ip, ...(port !== undefined && { port }) }]
  })
}

/**
 * Validates a create (or, with `partial`, an update) of a virtual service; returns its fields
 * besides the common ones. A virtual service has its own ports or names a service, not both.
 */
export function checkVirtualService(
  c: Checker,
  o: Doc,
  refs: RefIndex,
  partial: boolean,
  common: readonly string[],
): Doc {
  const p = '$'
  c.only(o, p, [
    ...common,
    'labels',
    'service_ports',
    'service',
    'apply_to',
    'ip_overrides',
    'service_addresses',
  ])
  const out: Doc = {}
  const ports = c.array(o, 'service_ports', p, { max: 1000 })
  if (ports) out.service_ports = virtualServicePorts(c, ports, `${p}.service_ports`)
  if (o.service !== undefined) {
    const href = c.hrefRef(o.service, `${p}.service`)
    if (href !== undefined && !(href.includes('/services/') && refs.drafts.has(draftHref(href))))
      c.fail(`${p}.service`, `service ${href} does not exist`, 'invalid_service')
    if (href !== undefined) out.service = { href }
  }
  if (ports && o.service !== undefined) c.fail(p, 'give service_ports or a service, not both')
  if (!partial && !ports && o.service === undefined)
    c.fail(p, 'needs service_ports or a service: the ports it is reached on')
  // an update that gives one of them replaces the other
  if (partial && ports) out.service = undefined
  if (partial && o.service !== undefined) out.service_ports = undefined
  const labels = c.array(o, 'labels', p, { max: 64 })
  if (labels) {
    const keys = new Map<string, string>()
    out.labels = labels.flatMap((x, i) => {
      const q = `${p}.labels[${i}]`
      const href = c.hrefRef(x, q)
      if (href === undefined) return []
      const l = refs.labels.get(href)
      if (!l) return c.fail(q, `label ${href} does not exist`, 'invalid_label') ?? []
      const other = keys.get(l.key)
      if (other)
        c.fail(q, `one label per type: ${other} and ${href} are both "${l.key}"`, 'invalid_label')
      keys.set(l.key, href)
      return [{ href }]
    })
  }
  const applyTo = c.oneOf(o, 'apply_to', p, ['host_only', 'internal_bridge_network'])
  if (applyTo === 'internal_bridge_network')
    c.fail(
      `${p}.apply_to`,
      'Palisade agents do not program container bridge networks; use host_only',
      UNSUPPORTED,
    )
  if (applyTo || !partial) out.apply_to = 'host_only'
  const overrides = c.array(o, 'ip_overrides', p, { max: 1000 })
  if (overrides)
    out.ip_overrides = overrides.flatMap((x, i) => ipOrCidr(c, x, `${p}.ip_overrides[${i}]`) ?? [])
  const addresses = c.array(o, 'service_addresses', p, { max: 1000 })
  if (addresses) out.service_addresses = serviceAddresses(c, addresses, `${p}.service_addresses`)
  if (!partial) {
    out.labels ??= []
    out.ip_overrides ??= []
    out.service_addresses ??= []
  }
  return out
}

/** The ports a binding's overrides may name: the virtual service's (or its service's). */
export type BoundPorts = readonly { proto: number; port?: number }[]

/**
 * One service binding of a `POST /service_bindings` body; returns its stored form. The virtual
 * service must be active (bindings are not provisioned), and each override must name a port it has.
 */
export function checkServiceBinding(
  c: Checker,
  x: unknown,
  p: string,
  lookup: {
    /** The active virtual service's ports, by its draft href; undefined when not active. */
    readonly ports: (vsDraftHref: string) => BoundPorts | undefined
    readonly workloads: ReadonlySet<string>
  },
): Doc | undefined {
  const o = c.object(x, p)
  if (!o) return undefined
  c.only(o, p, [
    'virtual_service',
    'workload',
    'port_overrides',
    'external_data_set',
    'external_data_reference',
    'container_workload',
  ])
  if (o.container_workload !== undefined)
    c.fail(
      `${p}.container_workload`,
      'Palisade has no container workloads; bind a workload',
      UNSUPPORTED,
    )
  const vs = c.hrefRef(o.virtual_service, `${p}.virtual_service`)
  const ports = vs === undefined ? undefined : lookup.ports(draftHref(vs))
  if (vs !== undefined && !ports)
    c.fail(
      `${p}.virtual_service`,
      `${vs} is not an active virtual service: provision it first, then bind its active href`,
      'invalid_virtual_service',
    )
  const workload =
    o.workload === undefined
      ? c.fail(`${p}.workload`, 'is required')
      : c.hrefRef(o.workload, `${p}.workload`)
  if (workload !== undefined && !lookup.workloads.has(workload))
    c.fail(`${p}.workload`, `workload ${workload} does not exist`, 'invalid_workload')
  c.string(o, 'external_data_set', p, { max: 255, nullable: true })
  c.string(o, 'external_data_reference', p, { max: 255, nullable: true })
  const overrides = (c.array(o, 'port_overrides', p, { max: 1000 }) ?? []).flatMap((y, i) => {
    const q = `${p}.port_overrides[${i}]`
    const po = c.object(y, q)
    if (!po) return []
    c.only(po, q, ['port', 'proto', 'new_port', 'new_to_port'])
    const port = c.int(po, 'port', q, { min: 0, max: 65535 })
    const proto = c.int(po, 'proto', q)
    if (proto !== undefined && proto !== 6 && proto !== 17)
      c.fail(`${q}.proto`, 'must be 6 (TCP) or 17 (UDP)')
    const newPort = c.int(po, 'new_port', q, { required: true, min: 0, max: 65535 })
    const newTo = c.int(po, 'new_to_port', q, { min: 0, max: 65535 })
    if (newTo !== undefined && newPort !== undefined && newTo <= newPort)
      c.fail(`${q}.new_to_port`, 'must be greater than new_port')
    if (
      ports &&
      !ports.some(
        (sp) =>
          (proto === undefined || sp.proto === proto) && (port === undefined || sp.port === port),
      )
    )
      c.fail(
        q,
        `the virtual service has no port ${port ?? 'at all'}${proto === undefined ? '' : `/${proto === 6 ? 'tcp' : 'udp'}`} to override`,
      )
    return [
      {
        new_port: newPort,
        ...(port !== undefined && { port }),
        ...(proto !== undefined && { proto }),
        ...(newTo !== undefined && { new_to_port: newTo }),
      },
    ]
  })
  return {
    virtual_service: vs,
    workload,
    port_overrides: overrides,
    external_data_set: o.external_data_set ?? null,
    external_data_reference: o.external_data_reference ?? null,
  }
}
