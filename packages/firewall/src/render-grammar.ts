/**
 * The grammar of every token a renderer writes into `nft -f`, `iptables-restore` or
 * `ipset restore` input. Renderers pass each value through one of these before emitting it, so
 * a value from anywhere (a peer list, a setting, a rule read back from the kernel) can never end
 * a statement early, open a new one, or name anything but our own table, chains and sets.
 * Defence in depth: the model already validates what it accepts; this holds even if it did not.
 */
import { canonicalCidr, IpParseError } from '@palisade/model'
import { COMMENT_PREFIX, IPSET_PREFIX, IPT_PREFIX } from './ours.js'
import type { IpFamily } from './ruleset.js'

const EXCERPT = 40

/** A value outside the grammar of the tool input it would go into; nothing was rendered. */
export class RenderError extends Error {
  constructor(
    readonly field: string,
    value: unknown,
    reason: string,
  ) {
    const text = typeof value === 'string' ? value : String(value)
    const shown = JSON.stringify(text.length > EXCERPT ? `${text.slice(0, EXCERPT)}...` : text)
    super(`cannot render ${field} ${shown}: ${reason}`)
  }
}

function int(field: string, value: unknown, min: number, max: number): string {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new RenderError(field, value, `must be a whole number from ${min} to ${max}`)
  return String(value)
}

export const port = (field: string, value: unknown) => int(field, value, 0, 65535)
export const byte = (field: string, value: unknown) => int(field, value, 0, 255)
/** Log groups, snap lengths and queue thresholds: 16 bits in nft and NFLOG. */
export const u16 = (field: string, value: unknown) => int(field, value, 0, 65535)
export const u32 = (field: string, value: unknown) => int(field, value, 0, 2 ** 32 - 1)
export const int32 = (field: string, value: unknown) => int(field, value, -(2 ** 31), 2 ** 31 - 1)

export function oneOf<T extends string | number>(
  field: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (!(allowed as readonly unknown[]).includes(value))
    throw new RenderError(field, value, `must be one of ${allowed.join(', ')}`)
  return value as T
}

function matching(field: string, value: unknown, re: RegExp, what: string): string {
  if (typeof value !== 'string' || !re.test(value)) throw new RenderError(field, value, what)
  return value
}

const NFT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/

/** Chains and sets of our nftables table: an identifier, never a keyword-like oddity. */
export const nftName = (field: string, value: unknown) =>
  matching(field, value, NFT_NAME, 'must be a letter then up to 63 letters, digits or _')

export const isNftName = (value: string): boolean => NFT_NAME.test(value)

const IPT_CHAIN = new RegExp(`^${IPT_PREFIX}[A-Z0-9_-]{1,19}$`)
const IPSET = new RegExp(`^${IPSET_PREFIX}[a-z0-9-]{1,20}$`)
const COMMENT = new RegExp(`^${COMMENT_PREFIX}[A-Za-z0-9_.-]{1,64}$`)

/** Our iptables chains: `PALISADE-` and up to 19 more characters (iptables allows 28). */
export const ourIptablesChainName = (field: string, value: unknown) =>
  matching(field, value, IPT_CHAIN, `must be ${IPT_PREFIX} then up to 19 of A-Z, 0-9, _ and -`)

/**
 * Our ipsets: `palisade-` and up to 20 more characters, so that the staging copy (`-t` added)
 * still fits ipset's 31.
 */
export const ourIpsetName = (field: string, value: unknown) =>
  matching(field, value, IPSET, `must be ${IPSET_PREFIX} then up to 20 of a-z, 0-9 and -`)

/**
 * Interface names as the kernel allows them (15 characters), less anything a tool reads as
 * syntax: a leading `-` would be taken by iptables-restore for an option.
 */
export function iface(field: string, value: unknown): string {
  const name = matching(
    field,
    value,
    /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/,
    'must be 1 to 15 of A-Z, a-z, 0-9, _ . - and not start with -',
  )
  if (name === '.' || name === '..') throw new RenderError(field, value, 'is not an interface name')
  return name
}

/** The comment that marks a rule of ours: nothing else is ever written as a comment. */
export const ourCommentText = (field: string, value: unknown) =>
  matching(field, value, COMMENT, `must be ${COMMENT_PREFIX} then up to 64 of A-Z, a-z, 0-9, _ . -`)

/**
 * Log prefixes: NFLOG takes 63 characters, nft 127; quotes, spaces and escapes never, nor a
 * leading `-` (an option to iptables-restore).
 */
export const logPrefix = (field: string, value: unknown) =>
  matching(
    field,
    value,
    /^[A-Za-z0-9:_.][A-Za-z0-9:_.-]{0,62}$/,
    'must be 1 to 63 of A-Z, a-z, 0-9, : _ . - and not start with -',
  )

/** One CIDR or address, re-parsed and re-formatted: canonical `A/len` of the family given. */
export function cidr(field: string, value: unknown, family?: IpFamily): string {
  if (typeof value !== 'string') throw new RenderError(field, value, 'must be an address or CIDR')
  try {
    const c = canonicalCidr(value)
    if (family !== undefined && c.family !== family)
      throw new RenderError(field, value, `must be an IPv${family} address or CIDR`)
    return c.text
  } catch (e) {
    if (e instanceof IpParseError) throw new RenderError(field, value, e.reason)
    throw e
  }
}

/** One address (no prefix length), re-parsed and re-formatted. */
function address(field: string, value: unknown, family?: IpFamily): string {
  if (typeof value !== 'string' || value.includes('/'))
    throw new RenderError(field, value, 'must be an address without a prefix length')
  const c = cidr(field, value, family)
  return c.slice(0, c.indexOf('/'))
}

/** An element of a set of single addresses: a /32 or /128, written as the bare address. */
export function exactElement(field: string, value: unknown, family?: IpFamily): string {
  const c = cidr(field, value, family)
  const slash = c.indexOf('/')
  if (c.slice(slash + 1) !== (c.includes(':') ? '128' : '32'))
    throw new RenderError(field, value, 'must be a single address (a /32 or /128)')
  return c.slice(0, slash)
}

/**
 * A set element: a CIDR, or (`withPort`) an `ADDR . PORT` pair, re-formatted. Without a family
 * (an element change, which does not say) either family passes; the tool checks it against the set.
 */
export function setElement(
  field: string,
  value: unknown,
  family?: IpFamily,
  withPort?: boolean,
): string {
  if (typeof value !== 'string') throw new RenderError(field, value, 'must be a set element')
  const dot = value.indexOf(' . ')
  if (dot < 0 && withPort !== true) return cidr(field, value, family)
  if (dot >= 0 && withPort !== false) {
    const p = value.slice(dot + 3)
    if (!/^\d{1,5}$/.test(p)) throw new RenderError(field, value, 'must end in a port number')
    return `${address(field, value.slice(0, dot), family)} . ${port(field, Number(p))}`
  }
  throw new RenderError(
    field,
    value,
    withPort ? 'must be ADDRESS . PORT' : 'must be an address or CIDR',
  )
}

/**
 * A rule as iptables-save printed it, repeated after `-D CHAIN` to delete exactly that rule: one
 * line, since each line is a command to iptables-restore (which itself refuses `-t` in one).
 */
export function savedRuleSpec(field: string, value: unknown): string {
  return matching(
    field,
    value,
    /^[^\n\r\0]{1,4096}$/,
    'must be one line of at most 4096 characters',
  )
}

/** Port ranges: at least one, each within 0 to 65535 and never backwards. */
export function portRanges(
  field: string,
  ranges: readonly (readonly [number, number])[],
): [string, string][] {
  if (ranges.length === 0) throw new RenderError(field, '', 'needs at least one port')
  return ranges.map(([a, b]) => {
    const lo = port(field, a)
    const hi = port(field, b)
    if (b < a) throw new RenderError(field, `${a}-${b}`, 'a range must not run backwards')
    return [lo, hi]
  })
}
