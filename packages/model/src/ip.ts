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
  const v4 = v4Range(text)
  if (v4) return { family: 4, interval: { lo: BigInt(v4.lo), hi: BigInt(v4.hi) } }
  const slash = text.indexOf('/')
  const { value } = addrToBigInt(text.slice(0, slash < 0 ? text.length : slash))
  const len = lenientPrefix(text, slash, 128)
  const size = 1n << BigInt(128 - len)
  const lo = (value / size) * size
  return { family: 6, interval: { lo, hi: lo + size - 1n } }
}

/** The prefix length after the slash at `slash` (none: `bits`): digits only, at most `bits`. */
function lenientPrefix(text: string, slash: number, bits: number): number {
  if (slash < 0) return bits
  let len = 0
  for (let i = slash + 1; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57 || len > bits) {
      len = -1
      break
    }
    len = len * 10 + (c - 48)
  }
  if (slash === text.length - 1 || len < 0 || len > bits)
    throw new IpParseError(text, `prefix length must be 0 to ${bits}`)
  return len
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
 * The largest aligned blocks covering `lo` to `hi` (IPv4, as numbers), as [address, prefix
 * length], in order; `visit` returning false stops the walk (and the answer is false).
 */
function eachV4Cidr(lo: number, hi: number, visit: (lo: number, len: number) => boolean): boolean {
  if (hi >= 2 ** 32) throw new RangeError(`not an IPv4 interval: ${lo} to ${hi}`)
  for (let at = lo; at <= hi;) {
    const aligned = at === 0 ? 32 : 31 - Math.clz32(at & -at)
    const count = hi - at + 1
    const size = Math.min(aligned, count >= 2 ** 32 ? 32 : 31 - Math.clz32(count))
    if (!visit(at, 32 - size)) return false
    at += 2 ** size
  }
  return true
}

/**
 * Each CIDR of the smallest list covering exactly the merged intervals, as [address, prefix
 * length], in order (the address a number for IPv4); `visit` returning false stops the walk.
 * Each block is the largest one aligned at its start that fits.
 */
function eachCidr(
  family: IpFamily,
  list: readonly Interval[],
  visit: (lo: bigint | number, len: number) => boolean,
): void {
  const bits = BITS[family]
  for (const iv of mergeIntervals(list)) {
    // (An interval past 2^32 in an IPv4 list, an IPv6 value where IPv4 was due, takes the
    // bigint way, which ends.)
    if (family === 4 && iv.hi < 2n ** 32n) {
      if (!eachV4Cidr(Number(iv.lo), Number(iv.hi), visit)) return
      continue
    }
    let lo = iv.lo
    while (lo <= iv.hi) {
      const size = Math.min(trailingZeros(lo, bits), log2(iv.hi - lo + 1n))
      if (!visit(lo, bits - size)) return
      lo += 1n << BigInt(size)
    }
  }
}

const cidrText = (family: IpFamily, lo: bigint | number, len: number) =>
  `${typeof lo === 'number' ? formatV4(lo) : bigIntToAddr(family, lo)}/${len}`

/** The smallest list of CIDRs covering exactly the merged intervals. */
export function intervalsToCidrs(family: IpFamily, list: readonly Interval[]): string[] {
  const out: string[] = []
  eachCidr(family, list, (lo, len) => out.push(cidrText(family, lo, len)) > 0)
  return out
}

/**
 * IPv4 intervals as plain numbers, `lo[k]` to `hi[k]`. The bigint intervals cost a set of
 * 100,000 addresses half a second to normalise, most of it collecting the garbage of an object
 * and two bigints per address; these cost a few milliseconds.
 */
interface V4Intervals {
  readonly lo: number[]
  readonly hi: number[]
}

/** The indexes of `lo` in the order of their values (no sort where they are in order). */
function orderOf(lo: readonly number[]): Uint32Array {
  const order = new Uint32Array(lo.length)
  let sorted = true
  for (let i = 0; i < lo.length; i++) {
    order[i] = i
    if (i > 0 && lo[i - 1]! > lo[i]!) sorted = false
  }
  return sorted ? order : order.sort((a, b) => lo[a]! - lo[b]!)
}

/**
 * Sorts and merges overlapping or adjacent IPv4 intervals; `from[k]` is the index of the one
 * interval the k-th is, or -1 where several made it.
 */
function mergeV4(list: V4Intervals): V4Intervals & { readonly from: number[] } {
  const out = { lo: [] as number[], hi: [] as number[], from: [] as number[] }
  for (const i of orderOf(list.lo)) {
    const lo = list.lo[i]!
    const hi = list.hi[i]!
    const k = out.hi.length - 1
    if (k >= 0 && lo <= out.hi[k]! + 1) {
      out.hi[k] = Math.max(out.hi[k]!, hi)
      out.from[k] = -1
    } else {
      out.lo.push(lo)
      out.hi.push(hi)
      out.from.push(i)
    }
  }
  return out
}

/** Removes every address of `cut` from `list`; both merged (sorted, disjoint). */
function subtractV4(list: V4Intervals, cut: V4Intervals): V4Intervals {
  const out = { lo: [] as number[], hi: [] as number[] }
  let c = 0
  for (let k = 0; k < list.lo.length; k++) {
    let lo = list.lo[k]!
    const hi = list.hi[k]!
    // What ends before this interval ends before the next ones too.
    while (c < cut.lo.length && cut.hi[c]! < lo) c++
    for (let j = c; j < cut.lo.length && cut.lo[j]! <= hi && lo <= hi; j++) {
      if (cut.lo[j]! > lo) {
        out.lo.push(lo)
        out.hi.push(cut.lo[j]! - 1)
      }
      lo = Math.max(lo, cut.hi[j]! + 1)
    }
    if (lo <= hi) {
      out.lo.push(lo)
      out.hi.push(hi)
    }
  }
  return out
}

/** The smallest list of CIDRs covering exactly merged IPv4 intervals. */
function v4Cidrs(list: V4Intervals): string[] {
  const out: string[] = []
  const emit = (at: number, len: number) => out.push(`${formatV4(at)}/${len}`) > 0
  for (let k = 0; k < list.lo.length; k++) eachV4Cidr(list.lo[k]!, list.hi[k]!, emit)
  return out
}

/** An IPv4 "A", "A/len" (host bits cleared) or range to `to`; undefined if `from` is not IPv4. */
function v4Range(from: string, to?: string): { lo: number; hi: number } | undefined {
  const slash = from.indexOf('/')
  const a = parseV4(from, 0, slash < 0 ? from.length : slash)
  if (a === undefined) return undefined
  const size = 2 ** (32 - lenientPrefix(from, slash, 32))
  const lo = a - (a % size)
  if (to === undefined || to === '') return { lo, hi: lo + size - 1 }
  const b = parseV4(to)
  // Not IPv4 (another family, or not an address): the general way says which.
  if (b === undefined) return { lo, hi: Number(rangeToInterval(from, to).interval.hi) }
  if (b < lo) throw new IpParseError(`${from}-${to}`, 'to_ip is before from_ip')
  return { lo, hi: b }
}

/**
 * The smallest list of CIDRs covering exactly `cidrs` ("A" or "A/len", host bits cleared), in
 * order: `intervalsToCidrs(family, cidrsToIntervals(cidrs))`, IPv4 in plain numbers.
 */
export function mergeCidrs(family: IpFamily, cidrs: readonly string[]): string[] {
  if (family === 6) {
    // Single IPv6 addresses none of which touches another, the usual large IPv6 set, are
    // already the answer once in order.
    const v6 = v6Addresses(cidrs)
    return v6 && apart(v6) ? v6Texts(cidrs, v6) : intervalsToCidrs(6, cidrsToIntervals(cidrs))
  }
  const list: V4Intervals = { lo: [], hi: [] }
  for (const c of cidrs) {
    const r = v4Range(c)
    if (!r) return intervalsToCidrs(4, cidrsToIntervals(cidrs))
    list.lo.push(r.lo)
    list.hi.push(r.hi)
  }
  const merged = mergeV4(list)
  // A CIDR merged with nothing and written canonically is its own answer: most of a large
  // set is, and taking it as it is saves writing it again.
  const out: string[] = []
  const emit = (at: number, len: number) => out.push(`${formatV4(at)}/${len}`) > 0
  for (let k = 0; k < merged.lo.length; k++) {
    const i = merged.from[k]!
    const text = i >= 0 ? cidrs[i]! : ''
    const slash = text.indexOf('/')
    // A dotted quad that parses is canonical; the length must be written, without a leading 0.
    if (slash >= 0 && merged.lo[k] === parseV4(text, 0, slash) && !/\/0\d/.test(text))
      out.push(text)
    else if (i >= 0 && slash < 0) out.push(`${text}/32`)
    else eachV4Cidr(merged.lo[k]!, merged.hi[k]!, emit)
  }
  return out
}

/**
 * Single addresses ("A/32" or "A/128", or without the length) as canonical CIDRs, sorted by
 * address: the order of the compiler's exact sets. IPv4 and IPv6 without an object or a bigint
 * per address: for the 100,000 of a large set those cost most of the time.
 */
export function sortedAddresses(cidrs: readonly string[]): string[] {
  const v4: number[] = []
  for (const c of cidrs) {
    const slash = c.indexOf('/')
    const n = parseV4(c, 0, slash < 0 ? c.length : slash)
    if (n === undefined || (slash >= 0 && (c.length !== slash + 3 || !c.endsWith('/32')))) break
    v4.push(n)
  }
  const out: string[] = []
  if (v4.length === cidrs.length) {
    for (const i of orderOf(v4)) {
      const c = cidrs[i]!
      out.push(c.includes('/') ? c : `${c}/32`)
    }
    return out
  }
  const v6 = v6Addresses(cidrs)
  return v6 ? v6Texts(cidrs, v6) : sortedByValue(cidrs)
}

type V6Addresses = { keys: Float64Array; order: Uint32Array; canonical: Uint8Array }

/** The addresses in order, as canonical CIDRs: as written where they were canonical. */
function v6Texts(cidrs: readonly string[], { keys, order, canonical }: V6Addresses): string[] {
  const out: string[] = []
  for (const i of order) {
    if (canonical[i] !== 0) {
      out.push(canonical[i] === 1 ? cidrs[i]! : `${cidrs[i]!}/128`)
      continue
    }
    const [a = 0, b = 0, c = 0] = keys.subarray(3 * i, 3 * i + 3)
    const groups = [a / 2 ** 32, a / 65536, a, b / 2 ** 32, b / 65536, b, c / 65536, c]
    out.push(`${formatV6(groups.map((g) => Math.floor(g) % 65536))}/128`)
  }
  return out
}

/** Whether no two of the addresses are equal or merge (an even one and the next). */
function apart({ keys, order }: V6Addresses): boolean {
  for (let k = 1; k < order.length; k++) {
    const a = 3 * order[k - 1]!
    const b = 3 * order[k]!
    // An even last part has no carry into the others when one is added.
    const low = keys[a + 2]!
    const next = keys[b + 2] === low || (keys[b + 2] === low + 1 && low % 2 === 0)
    if (next && keys[a] === keys[b] && keys[a + 1] === keys[b + 1]) return false
  }
  return true
}

/**
 * IPv6 single addresses as three numbers each (48, 48 and 32 bits), their order by those, and
 * which are written canonically; undefined if one is not an IPv6 address.
 */
function v6Addresses(cidrs: readonly string[]): V6Addresses | undefined {
  const n = cidrs.length
  const keys = new Float64Array(3 * n)
  const canonical = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const c = cidrs[i]!
    const slash = c.indexOf('/')
    const end = slash < 0 ? c.length : slash
    if (slash >= 0 && (c.length !== slash + 4 || !c.endsWith('/128'))) return undefined
    const g = parseV6(c, end)
    if (!g) return undefined
    keys[3 * i] = g[0]! * 2 ** 32 + g[1]! * 65536 + g[2]!
    keys[3 * i + 1] = g[3]! * 2 ** 32 + g[4]! * 65536 + g[5]!
    keys[3 * i + 2] = g[6]! * 65536 + g[7]!
    // 1: canonical as written; 2: once its length is written
    canonical[i] = isCanonicalV6(c, end, g) ? (slash < 0 ? 2 : 1) : 0
  }
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  order.sort(
    (a, b) =>
      keys[3 * a]! - keys[3 * b]! ||
      keys[3 * a + 1]! - keys[3 * b + 1]! ||
      keys[3 * a + 2]! - keys[3 * b + 2]!,
  )
  return { keys, order, canonical }
}

const sortedByValue = (cidrs: readonly string[]) =>
  cidrs
    .map((c) => canonicalCidr(c).text)
    .map((c) => ({ c, v: addrToBigInt(c.slice(0, c.indexOf('/'))).value }))
    .sort((a, b) => (a.v < b.v ? -1 : a.v > b.v ? 1 : 0))
    .map((x) => x.c)

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

/**
 * The entries' addresses, included and excluded, merged: IPv4 in numbers; IPv6 as text while
 * it is only single addresses (the usual case: workloads' own), else in bigint intervals.
 */
function intervalsOf(entries: readonly AddressEntry[]): {
  v4: V4Intervals
  v6: { readonly singles: readonly string[] } | { readonly intervals: readonly Interval[] }
} {
  const inc4: V4Intervals = { lo: [], hi: [] }
  const exc4: V4Intervals = { lo: [], hi: [] }
  const singles6: string[] = []
  const inc6: Interval[] = []
  const exc6: Interval[] = []
  for (const e of entries) {
    const v4 = v4Range(e.from, e.to)
    if (v4) {
      const to = e.exclusion ? exc4 : inc4
      to.lo.push(v4.lo)
      to.hi.push(v4.hi)
    } else if (!e.to && !e.exclusion && isV6Address(e.from)) singles6.push(e.from)
    else (e.exclusion ? exc6 : inc6).push(rangeToInterval(e.from, e.to).interval)
  }
  return {
    v4: subtractV4(mergeV4(inc4), mergeV4(exc4)),
    v6:
      inc6.length + exc6.length === 0
        ? { singles: singles6 }
        : { intervals: subtractIntervals([...inc6, ...cidrsToIntervals(singles6)], exc6) },
  }
}

/** Whether `text` is one IPv6 address, without a length or with /128. */
function isV6Address(text: string): boolean {
  const slash = text.indexOf('/')
  if (slash >= 0 && (text.length !== slash + 4 || !text.endsWith('/128'))) return false
  return parseV6(text, slash < 0 ? text.length : slash) !== undefined
}

/** Builds a normalised address set from entries, removing the excluded ones. */
export function addressSetOf(entries: readonly AddressEntry[]): AddressSet {
  const { v4, v6 } = intervalsOf(entries)
  return {
    v4: v4Cidrs(v4),
    v6: 'singles' in v6 ? mergeCidrs(6, v6.singles) : intervalsToCidrs(6, v6.intervals),
  }
}

/**
 * How many CIDRs `addressSetOf(entries)` holds (both families), counted up to `max` + 1 without
 * making them (but IPv6 single addresses, at most one CIDR each): cheap to check before a large
 * expansion.
 */
export function addressSetSize(entries: readonly AddressEntry[], max: number): number {
  const { v4, v6 } = intervalsOf(entries)
  let n = 0
  for (let k = 0; k < v4.lo.length && n <= max; k++)
    eachV4Cidr(v4.lo[k]!, v4.hi[k]!, () => ++n <= max)
  if (n > max) return n
  // Single addresses make at most one CIDR each.
  if ('singles' in v6) return n + Math.min(mergeCidrs(6, v6.singles).length, max - n + 1)
  return n + cidrCount(6, v6.intervals, max - n)
}

export function unionAddressSets(sets: readonly AddressSet[]): AddressSet {
  return {
    v4: mergeCidrs(
      4,
      sets.flatMap((s) => s.v4),
    ),
    v6: mergeCidrs(
      6,
      sets.flatMap((s) => s.v6),
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
