/** Service ports as the API writes them (services, inline ingress services), checked on write. */
import type { ServicePort } from '@palisade/model'
import { checkServicePort } from '@palisade/model'
import type { Checker, Doc } from '../validate.js'

/** Checks `{proto, port?, to_port?, icmp_type?, icmp_code?}` entries; returns them as written. */
export const servicePorts = (c: Checker, list: unknown[] | undefined, path: string): Doc[] =>
  (list ?? []).flatMap((x, i): Doc[] => {
    const sp = servicePort(c, x, `${path}[${i}]`)
    return sp ? [sp] : []
  })

/** One service port; undefined when it is not an object. */
export function servicePort(c: Checker, x: unknown, p: string): Doc | undefined {
  const o = c.object(x, p)
  if (!o) return undefined
  c.only(o, p, ['port', 'to_port', 'proto', 'icmp_type', 'icmp_code'])
  const proto = c.int(o, 'proto', p, { required: true, min: -1, max: 255 })
  const sp: ServicePort = { proto: proto ?? 0, ...portFields(c, o, p) }
  if (proto !== undefined) for (const issue of checkServicePort(sp)) c.fail(p, issue.message)
  return o
}

function portFields(c: Checker, o: Doc, p: string): Omit<ServicePort, 'proto'> {
  const port = c.int(o, 'port', p, { min: 0, max: 65535 })
  const toPort = c.int(o, 'to_port', p, { min: 0, max: 65535 })
  const icmpType = c.int(o, 'icmp_type', p, { min: 0, max: 255 })
  const icmpCode = c.int(o, 'icmp_code', p, { min: 0, max: 255 })
  return {
    ...(port !== undefined && { port }),
    ...(toPort !== undefined && { toPort }),
    ...(icmpType !== undefined && { icmpType }),
    ...(icmpCode !== undefined && { icmpCode }),
  }
}
