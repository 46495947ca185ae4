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
    readonly reason: string,
  ) {
    super(`invalid IP address or range "${input}": ${reason}`)
  }
}

/** An IPv4 address (`text` from `from` to `to`) as an unsigned 32-bit number. */
function parseV4(text: string, from = 0, to = text.length): number | undefined {
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return undefined
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
    } else if (c >= 48 && c <= 57) {
      // Leading zeros are ambiguous (octal in some parsers): refuse rather than guess.
      if (digits > 0 && part === 0) return undefined
      part = part * 10 + (c - 48)
      if (++digits > 3 || part > 255) return undefined
    } else return undefined
  }
  if (digits === 0 || dots !== 3) return undefined
  return value * 256 + part
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** An IPv6 address (`text` up to `to`) as its eight 16-bit groups. */
function parseV6(text: string, to = text.length): number[] | undefined {
  const groups = [0, 0, 0, 0, 0, 0, 0, 0]
  let count = 0
  let gap = -1
  let i = 0
  if (text.startsWith('::')) {
    gap = 0
    i = 2
  }
  while (i < to) {
    const start = i
    let value = 0
    for (let h = hexDigit(text.charCodeAt(i)); h >= 0 && i < to; h = hexDigit(text.charCodeAt(i))) {
      value = value * 16 + h
      i++
    }
    if (i < to && text.charCodeAt(i) === 46) {
      // An embedded IPv4 address ends the text.
      const v4 = parseV4(text, start, to)
      if (v4 === undefined || count > 6) return undefined
      groups[count++] = Math.floor(v4 / 65536)
      groups[count++] = v4 % 65536
      break
    }
    if (i === start || i - start > 4 || count === 8) return undefined
    groups[count++] = value
    if (i === to) break
    if (text.charCodeAt(i) !== 58) return undefined
    i++
    if (text.charCodeAt(i) === 58 && i < to) {
      if (gap >= 0) return undefined
      gap = count
      i++
    } else if (i === to) return undefined
  }
  if (gap < 0) return count === 8 ? groups : undefined
  if (count > 7) return undefined
  // Move the groups after `::` to the end; the zeros it stands for fill the space between.
  const shift = 8 - count
  for (let j = count - 1; j >= gap; j--) groups[j + shift] = groups[j] ?? 0
  for (let j = gap; j < gap + shift; j++) groups[j] = 0
  return groups
}

const formatV4 = (n: number) =>
  `${Math.floor(n / 16777216)}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`

/** The first longest run of two or more zero groups: where `::` goes (RFC 5952), if anywhere. */
function longestZeroRun(g: readonly number[]): { at: number; length: number } {
  let at = -1
  let length = 1
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > length) {
      at = i
      length = j - i
    }
    i = j
  }
  return { at, length }
}

/** RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups as ::. */
function formatV6(g: readonly number[]): string {
  const { at: best, length: bestLen } = longestZeroRun(g)
  let out = ''
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += i === 0 ? '::' : ':'
      i += bestLen - 1
      continue
    }
    out += (g[i] ?? 0).toString(16)
    if (i < 7) out += ':'
  }
  return out
}

export function familyOf(text: string): IpFamily {
  return addrToBigInt(text.split('/')[0] ?? '').family
}

export function addrToBigInt(text: string): { family: IpFamily; value: bigint } {
  const v4 = parseV4(text)
  if (v4 !== undefined) return { family: 4, value: BigInt(v4) }
  const v6 = parseV6(text)
  if (v6 !== undefined) {
    let value = 0n
    for (const g of v6) value = (value << 16n) | BigInt(g)
    return { family: 6, value }
  }
  throw new IpParseError(text, 'not an IPv4 or IPv6 address')
}

/** Formats an address: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function bigIntToAddr(family: IpFamily, value: bigint): string {
  if (family === 4) return formatV4(Number(value & 0xffffffffn))
  const g: number[] = []
  for (let i = 7; i >= 0; i--) g.push(Number((value >> BigInt(i * 16)) & 0xffffn))
  return formatV6(g)
}

/** The prefix length after the slash at `slash` (none: the whole address), at most `bits`. */
function prefixLength(text: string, slash: number, bits: number): number | undefined {
  if (slash < 0) return bits
  let len = 0
  for (let i = slash + 1; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57 || (len === 0 && i > slash + 1)) return undefined
    len = len * 10 + (c - 48)
  }
  return text.length > slash + 1 && len <= bits ? len : undefined
}

/**
 * Re-parses and re-formats one address ("A") or CIDR ("A/len"): the canonical "A/len" text,
 * or IpParseError when it is not one, or its host bits are set. Unlike normaliseCidr it works
 * on plain numbers, cheap enough to check every element of a set of 100,000.
 */
export function canonicalCidr(text: string): { family: IpFamily; text: string } {
  const slash = text.indexOf('/')
  const end = slash < 0 ? text.length : slash
  const v4 = parseV4(text, 0, end)
  const v6 = v4 === undefined ? parseV6(text, end) : undefined
  if (v4 === undefined && v6 === undefined)
    throw new IpParseError(text, 'not an IPv4 or IPv6 address')
  const family: IpFamily = v4 !== undefined ? 4 : 6
  const len = prefixLength(text, slash, BITS[family])
  if (len === undefined) throw new IpParseError(text, `prefix length must be 0 to ${BITS[family]}`)
  if (v4 !== undefined) {
    if (len < 32 && v4 % 2 ** (32 - len) !== 0) throw new IpParseError(text, 'host bits are set')
    // A dotted quad that parses has no leading zeros: it is its own canonical form.
    return { family, text: slash < 0 ? `${text}/32` : text }
  }
  const groups = v6 ?? []
  for (let i = Math.floor(len / 16); i < 8; i++) {
    if ((groups[i] ?? 0) % 2 ** (16 - Math.max(0, len - i * 16)) !== 0)
      throw new IpParseError(text, 'host bits are set')
  }
  if (slash >= 0 && isCanonicalV6(text, end, groups)) return { family, text }
  return { family, text: `${formatV6(groups)}/${len}` }
}

/**
 * Re-parses and re-formats one address without a prefix: dotted IPv4 or RFC 5952 IPv6, or
 * IpParseError. What hosts and clients report is stored in this form, so one address has one
 * spelling everywhere it is compared.
 */
export function canonicalAddress(text: string): { family: IpFamily; text: string } {
  if (text.includes('/')) throw new IpParseError(text, 'an address has no prefix length')
  const { family, text: cidr } = canonicalCidr(text)
  return { family, text: cidr.slice(0, cidr.indexOf('/')) }
}

/**
 * Whether `text` (up to `end`, which parsed as `groups`) is already what formatV6 would write:
 * lower-case hex without leading zeros or a dotted tail, and `::` exactly where RFC 5952 puts
 * it. Most addresses are, and checking is cheaper than writing them again.
 */
function isCanonicalV6(text: string, end: number, groups: readonly number[]): boolean {
  let written = 0
  let gapAt = -1
  let digits = 0
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c === 58) {
      if (i > 0 && text.charCodeAt(i - 1) === 58) gapAt = written
      digits = 0
    } else if ((c >= 48 && c <= 57) || (c >= 97 && c <= 102)) {
      // a leading zero: this group began with 0 and goes on
      if (digits === 1 && text.charCodeAt(i - 1) === 48) return false
      if (digits++ === 0) written++
    } else return false
  }
  const run = longestZeroRun(groups)
  return gapAt === run.at && (gapAt < 0 || 8 - written === run.length)
}

/** Parses "A", "A/len" (host bits are cleared) into an interval. */
export function cidrToInterval(text: string): { family: IpFamily; interval: Interval } {
  const [ip = '', lenText, ...rest] = text.split('/')
  const { family, value } = addrToBigInt(ip)
  const bits = BITS[family]
  const len = lenText === undefined ? bits : Number(lenText)
  if (!/^\d+$/.test(lenText ?? `${bits}`) || len > bits || rest.length > 0) {
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

/** The number of low zero bits of `n` (> 0), up to `max`. */
function trailingZeros(n: bigint, max: number): number {
  if (n === 0n) return max
  return (n & -n).toString(2).length - 1
}

/** floor(log2(n)) for n >= 1. */
const log2 = (n: bigint) => n.toString(2).length - 1

/**
 * Each CIDR of the smallest list covering exactly the merged intervals, as [address, prefix
 * length], in order; `visit` returning false stops the walk. Each block is the largest one
 * aligned at its start that fits.
 */
function eachCidr(
  family: IpFamily,
  list: readonly Interval[],
  visit: (lo: bigint, len: number) => boolean,
): void {
  const bits = BITS[family]
  for (const iv of mergeIntervals(list)) {
    let lo = iv.lo
    while (lo <= iv.hi) {
      const size = Math.min(trailingZeros(lo, bits), log2(iv.hi - lo + 1n))
      if (!visit(lo, bits - size)) return
      lo += 1n << BigInt(size)
    }
  }
}

/** The smallest list of CIDRs covering exactly the merged intervals. */
export function intervalsToCidrs(family: IpFamily, list: readonly Interval[]): string[] {
  const out: string[] = []
  eachCidr(family, list, (lo, len) => out.push(`${bigIntToAddr(family, lo)}/${len}`) > 0)
  return out
}

/**
 * How many CIDRs `intervalsToCidrs` would make of the intervals, counted up to `max` + 1 (a
 * caller refusing more than `max` learns so without the whole expansion).
 */
export function cidrCount(family: IpFamily, list: readonly Interval[], max: number): number {
  let n = 0
  eachCidr(family, list, () => ++n <= max)
  return n
}

export function cidrsToIntervals(cidrs: readonly string[]): Interval[] {
  return cidrs.map((c) => cidrToInterval(c).interval)
}

export interface AddressEntry {
  readonly from: string
  readonly to?: string
  readonly exclusion?: boolean
}

/** The entries' intervals, included and excluded, by family. */
function intervalsOf(entries: readonly AddressEntry[]) {
  const inc: Record<IpFamily, Interval[]> = { 4: [], 6: [] }
  const exc: Record<IpFamily, Interval[]> = { 4: [], 6: [] }
  for (const e of entries) {
    const { family, interval } = rangeToInterval(e.from, e.to)
    ;(e.exclusion ? exc : inc)[family].push(interval)
  }
  return { inc, exc }
}

/** Builds a normalised address set from entries, removing the excluded ones. */
export function addressSetOf(entries: readonly AddressEntry[]): AddressSet {
  const { inc, exc } = intervalsOf(entries)
  return {
    v4: intervalsToCidrs(4, subtractIntervals(inc[4], exc[4])),
    v6: intervalsToCidrs(6, subtractIntervals(inc[6], exc[6])),
  }
}

/**
 * How many CIDRs `addressSetOf(entries)` holds (both families), counted up to `max` + 1 without
 * making them: cheap to check before a large expansion.
 */
export function addressSetSize(entries: readonly AddressEntry[], max: number): number {
  const { inc, exc } = intervalsOf(entries)
  const v4 = cidrCount(4, subtractIntervals(inc[4], exc[4]), max)
  return v4 > max ? v4 : v4 + cidrCount(6, subtractIntervals(inc[6], exc[6]), max - v4)
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
