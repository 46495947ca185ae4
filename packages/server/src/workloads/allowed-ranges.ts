/**
 * A pairing profile's `allowed_ip_ranges`: the CIDRs its agents may report addresses in. An
 * agent that holds an activation code could otherwise enroll any address, which then appears
 * in other hosts' allow sets.
 */
import type { WorkloadInterface } from '@palisade/model'
import { canonicalCidr, cidrContains, IpParseError } from '@palisade/model'
import type { Checker, Doc } from '../validate.js'

/** The ranges of a profile body, canonical; null: any address (the default). */
export function allowedRangesOf(c: Checker, body: Doc): string[] | null | undefined {
  if (body.allowed_ip_ranges === null) return null
  const list = c.array(body, 'allowed_ip_ranges', '$', { max: 256 })
  if (!list) return undefined
  return list.flatMap((x, i) => {
    const p = `$.allowed_ip_ranges[${i}]`
    if (typeof x !== 'string') return c.fail(p, 'must be a CIDR block such as "10.0.0.0/8"') ?? []
    try {
      return [canonicalCidr(x).text]
    } catch (e) {
      if (e instanceof IpParseError) return c.fail(p, e.message) ?? []
      throw e
    }
  })
}

/** Whether an address is in one of the ranges (undefined or null: any address is). */
export const isAllowed = (ranges: readonly string[] | null | undefined, address: string) =>
  !ranges || ranges.some((r) => cidrContains(r, address))

/** The interfaces whose address is in the ranges, and the others. */
export function splitByRanges(
  ranges: readonly string[] | null | undefined,
  interfaces: readonly WorkloadInterface[],
): { inside: WorkloadInterface[]; outside: WorkloadInterface[] } {
  const inside: WorkloadInterface[] = []
  const outside: WorkloadInterface[] = []
  for (const i of interfaces) (isAllowed(ranges, i.address) ? inside : outside).push(i)
  return { inside, outside }
}
