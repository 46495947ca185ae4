import ipaddr from 'ipaddr.js'

/** An IP family: 4 or 6. */
export type IpFamily = 4 | 6

/** A closed interval of addresses of one family, as integers. */
export interface Interval {
  readonly lo: bigint
  readonly hi: bigint
}

/**
 * Addresses normalised to the smallest list of CIDRs per family, sorted and disjoint.
 * Two equal address sets always have equal `v4` and `v6` arrays, so they compare as text.
 */
export interface AddressSet {
  readonly v4: readonly string[]
  readonly v6: readonly string[]
}

export const EMPTY_ADDRESS_SET: AddressSet = Object.freeze({ v4: [], v6: [] })
export const ANY_ADDRESS_SET: AddressSet = Object.freeze({ v4: ['0.0.0.0/0'], v6: ['::/0'] })

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 }

export class IpParseError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid IP address or range "${input}": ${reason}`)
  }
}

export function familyOf(text: string): IpFamily {
  const ip = text.split('/')[0] ?? ''
  if (ipaddr.IPv4.isValidFourPartDecimal(ip)) return 4
  if (ipaddr.IPv6.isValid(ip)) return 6
  throw new IpParseError(text, 'not an IPv4 or IPv6 address')
}

export function addrToBigInt(text: string): { family: IpFamily; value: bigint } {
  const family = familyOf(text)
  const bytes = ipaddr.parse(text).toByteArray()
  let value = 0n
  for (const b of bytes) value = (value << 8n) | BigInt(b)
  return { family, value }
}

export function bigIntToAddr(family: IpFamily, value: bigint): string {
  const n = BITS[family] / 8
  const bytes: number[] = []
  for (let i = n - 1; i >= 0; i--) bytes.push(Number((value >> BigInt(i * 8)) & 0xffn))
  return ipaddr.fromByteArray(bytes).toString()
}

/** Parses "A", "A/len" (host bits are cleared) into an interval. */
export function cidrToInterval(text: string): { family: IpFamily; interval: Interval } {
  const [ip = '', lenText] = text.trim().split('/')
  const { family, value } = addrToBigInt(ip)
  const bits = BITS[family]
  const len = lenText === undefined ? bits : Number(lenText)
  if (!/^\d+$/.test(lenText ?? `${bits}`) || len > bits) {
    throw new IpParseError(text, `prefix length must be 0 to ${bits}`)
  }
  const size = 1n << BigInt(bits - len)
  const lo = (value / size) * size
  return { family, interval: { lo, hi: lo + size - 1n } }
}

/** Parses an Illumio-style range: `from_ip` (IP or CIDR) with an optional `to_ip`. */
export function rangeToInterval(from: string, to?: string): { family: IpFamily; interval: Interval } {
  const start = cidrToInterval(from)
  if (to === undefined || to === '') return start
  const end = addrToBigInt(to)
  if (end.family !== start.family) throw new IpParseError(`${from}-${to}`, 'mixes IPv4 and IPv6')
  if (end.value < start.interval.lo) throw new IpParseError(`${from}-${to}`, 'to_ip is before from_ip')
  return { family: start.family, interval: { lo: start.interval.lo, hi: end.value } }
}

/** Sorts and merges overlapping or adjacent intervals. */
export function mergeIntervals(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0))
  const out: Interval[] = []
  for (const cur of sorted) {
    const last = out[out.length - 1]
    if (last && cur.lo <= last.hi + 1n) {
      if (cur.hi > last.hi) out[out.length - 1] = { lo: last.lo, hi: cur.hi }
    } else out.push(cur)
  }
  return out
}

/** Removes every address of `minus` from `from`; both may be unsorted. */
export function subtractIntervals(from: readonly Interval[], minus: readonly Interval[]): Interval[] {
  const cut = mergeIntervals(minus)
  const out: Interval[] = []
  for (const iv of mergeIntervals(from)) {
    let lo = iv.lo
    for (const c of cut) {
      if (c.hi < lo || c.lo > iv.hi) continue
      if (c.lo > lo) out.push({ lo, hi: c.lo - 1n })
      lo = c.hi + 1n
      if (lo > iv.hi) break
    }
    if (lo <= iv.hi) out.push({ lo, hi: iv.hi })
  }
  return out
}

/** The smallest list of CIDRs covering exactly the merged intervals. */
export function intervalsToCidrs(family: IpFamily, list: readonly Interval[]): string[] {
  const bits = BITS[family]
  const out: string[] = []
  for (const iv of mergeIntervals(list)) {
    let lo = iv.lo
    while (lo <= iv.hi) {
      let size = 0
      while (size < bits) {
        const block = 1n << BigInt(size + 1)
        if (lo % block !== 0n || lo + block - 1n > iv.hi) break
        size++
      }
      out.push(`${bigIntToAddr(family, lo)}/${bits - size}`)
      lo += 1n << BigInt(size)
    }
  }
  return out
}

export function cidrsToIntervals(cidrs: readonly string[]): Interval[] {
  return cidrs.map((c) => cidrToInterval(c).interval)
}

export interface AddressEntry {
  readonly from: string
  readonly to?: string
  readonly exclusion?: boolean
}

/** Builds a normalised address set from entries, removing the excluded ones. */
export function addressSetOf(entries: readonly AddressEntry[]): AddressSet {
  const inc: Record<IpFamily, Interval[]> = { 4: [], 6: [] }
  const exc: Record<IpFamily, Interval[]> = { 4: [], 6: [] }
  for (const e of entries) {
    const { family, interval } = rangeToInterval(e.from, e.to)
    ;(e.exclusion ? exc : inc)[family].push(interval)
  }
  return {
    v4: intervalsToCidrs(4, subtractIntervals(inc[4], exc[4])),
    v6: intervalsToCidrs(6, subtractIntervals(inc[6], exc[6])),
  }
}

export function unionAddressSets(sets: readonly AddressSet[]): AddressSet {
  return {
    v4: intervalsToCidrs(4, sets.flatMap((s) => cidrsToIntervals(s.v4))),
    v6: intervalsToCidrs(6, sets.flatMap((s) => cidrsToIntervals(s.v6))),
  }
}

export function addressSetContains(set: AddressSet, ip: string): boolean {
  const { family, value } = addrToBigInt(ip)
  return (family === 4 ? set.v4 : set.v6).some((c) => {
    const { interval } = cidrToInterval(c)
    return value >= interval.lo && value <= interval.hi
  })
}

export function cidrContains(cidr: string, ip: string): boolean {
  const a = cidrToInterval(cidr)
  const b = addrToBigInt(ip)
  return a.family === b.family && b.value >= a.interval.lo && b.value <= a.interval.hi
}

/** Normalises one CIDR or address ("1.2.3.4" -> "1.2.3.4/32", host bits cleared). */
export function normaliseCidr(text: string): string {
  const { family, interval } = cidrToInterval(text)
  const out = intervalsToCidrs(family, [interval])
  return out[0] ?? text
}
