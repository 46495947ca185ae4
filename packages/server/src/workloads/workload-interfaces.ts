import { canonicalAddress } from '@palisade/model'
import type { Checker, Doc, WorkloadInterface } from '../validate.js'

const LINK_STATES = ['up', 'down', 'unknown'] as const

/** An IP address re-parsed and re-formatted, with its family; undefined (and a failure) if not one. */
export function addressAt(
  c: Checker,
  text: string,
  path: string,
): { family: 4 | 6; text: string } | undefined {
  try {
    return canonicalAddress(text)
  } catch {
    return c.fail(path, `${JSON.stringify(text)} is not an IPv4 or IPv6 address`)
  }
}

/**
 * The `interfaces` of a workload described through the API, as the vendor writes them: a name
 * and an address each, the network's prefix length (`cidr_block`), the default gateway, the link
 * state and a friendly name. `address` may carry the prefix (`10.0.0.5/24`, a Palisade
 * shorthand): it is stored split, as the vendor shows it.
 */
export function apiInterfacesOf(c: Checker, body: Doc): WorkloadInterface[] | undefined {
  const list = c.array(body, 'interfaces', '$', { max: 256 })
  if (!list) return undefined
  return list.flatMap((x, i): WorkloadInterface[] => {
    const p = `$.interfaces[${i}]`
    const o = c.object(x, p)
    if (!o) return []
    c.only(o, p, [
      'name',
      'address',
      'cidr_block',
      'default_gateway_address',
      'link_state',
      'friendly_name',
    ])
    const name = c.string(o, 'name', p, { required: true, max: 64 })
    const written = c.string(o, 'address', p, { required: true, max: 68 })
    const [spelled, prefix, ...rest] = (written ?? '').split('/')
    const parsed = written === undefined ? undefined : addressAt(c, spelled ?? '', `${p}.address`)
    const family = parsed?.family
    const address = parsed?.text
    const max = family === 6 ? 128 : 32
    let cidr = c.int(o, 'cidr_block', p, { min: 0, max, nullable: true })
    if (prefix !== undefined) {
      const n = /^\d+$/.test(prefix) && rest.length === 0 ? Number(prefix) : NaN
      if (!(n <= max)) c.fail(`${p}.address`, `the prefix length after / must be 0 to ${max}`)
      else if (cidr !== undefined && cidr !== null && cidr !== n)
        c.fail(`${p}.cidr_block`, `is ${cidr}, but the address says /${n}; give one of them`)
      else cidr = n
    }
    const gatewayText = c.string(o, 'default_gateway_address', p, { max: 64, nullable: true })
    const g = gatewayText ? addressAt(c, gatewayText, `${p}.default_gateway_address`) : undefined
    const gateway = g?.text
    if (g && family !== undefined && g.family !== family)
      c.fail(`${p}.default_gateway_address`, `must be an IPv${family} address, as the interface's`)
    const link = c.oneOf(o, 'link_state', p, LINK_STATES, { nullable: true })
    const friendly = c.string(o, 'friendly_name', p, { max: 255, nullable: true })
    if (name === undefined || address === undefined || family === undefined) return []
    return [
      {
        name,
        address,
        ...(cidr !== undefined && cidr !== null && { cidr_block: cidr }),
        ...(gateway && { default_gateway_address: gateway }),
        ...(link && { link_state: link }),
        ...(friendly && { friendly_name: friendly }),
      },
    ]
  })
}

/** An interface as the API shows it: every field, null where unknown. */
export const interfaceView = (i: WorkloadInterface) => ({
  name: i.name,
  address: i.address,
  cidr_block: i.cidr_block ?? null,
  default_gateway_address: i.default_gateway_address ?? null,
  link_state: i.link_state ?? 'up',
  friendly_name: i.friendly_name ?? null,
})
