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
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`invalid IP address or range "${input}": ${reason}`)
  }
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

function parseV4(text: string): bigint | undefined {
  const m = V4.exec(text)
  if (!m) return undefined
  let value = 0n
  for (let i = 1; i <= 4; i++) {
    const part = m[i] ?? ''
    // Leading zeros are ambiguous (octal in some parsers): refuse rather than guess.
    if (part.length > 1 && part.startsWith('0')) return undefined
    const n = Number(part)
    if (n > 255) return undefined
    value = (value << 8n) | BigInt(n)
  }
  return value
}

function parseV6(text: string): bigint | undefined {
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const groups = (half: string): number[] | undefined => {
    if (half === '') return []
    const out: number[] = []
    const parts = half.split(':')
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] ?? ''
      if (i === parts.length - 1 && part.includes('.')) {
        const v4 = parseV4(part)
        if (v4 === undefined) return undefined
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn))
      } else if (HEX_GROUP.test(part)) out.push(parseInt(part, 16))
      else return undefined
    }
    return out
  }
  const head = groups(halves[0] ?? '')
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : []
  if (!head || !tail) return undefined
  const fill = 8 - head.length - tail.length
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined
  let value = 0n
  for (const g of [...head, ...new Array<number>(fill).fill(0), ...tail])
    value = (value << 16n) | BigInt(g)
  return value
}

export function familyOf(text: string): IpFamily {
  return addrToBigInt(text.split('/')[0] ?? '').family
}

export function addrToBigInt(text: string): { family: IpFamily; value: bigint } {
  const v4 = parseV4(text)
  if (v4 !== undefined) return { family: 4, value: v4 }
  const v6 = text.includes(':') ? parseV6(text) : undefined
  if (v6 !== undefined) return { family: 6, value: v6 }
  throw new IpParseError(text, 'not an IPv4 or IPv6 address')
}

/** Formats an address: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function bigIntToAddr(family: IpFamily, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => Number((value >> s) & 0xffn)).join('.')
  const g: number[] = []
  for (let i = 7; i >= 0; i--) g.push(Number((value >> BigInt(i * 16)) & 0xffffn))
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':')
  if (best < 0) return hex(g)
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
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
export function rangeToInterval(
  from: string,
  to?: string,
): { family: IpFamily; interval: Interval } {
  const start = cidrToInterval(from)
  if (to === undefined || to === '') return start
  const end = addrToBigInt(to)
  if (end.family !== start.family) throw new IpParseError(`${from}-${to}`, 'mixes IPv4 and IPv6')
  if (end.value < start.interval.lo)
    throw new IpParseError(`${from}-${to}`, 'to_ip is before from_ip')
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
export function subtractIntervals(
  from: readonly Interval[],
  minus: readonly Interval[],
): Interval[] {
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
    v4: intervalsToCidrs(
      4,
      sets.flatMap((s) => cidrsToIntervals(s.v4)),
    ),
    v6: intervalsToCidrs(
      6,
      sets.flatMap((s) => cidrsToIntervals(s.v6)),
    ),
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
