/**
 * Failed sign-ins and failed API authentication, per source address and name tried: past a limit
 * in a minute that name is refused (429) from that source before its credentials are looked at,
 * and past ten times the limit the source is refused whatever name it tries (a spray across
 * names). Counting per name keeps an attacker behind the same NAT or jump host as an
 * administrator from locking the administrator out by failing with other names. The failures of
 * a source in a minute become one audit event, written when the minute is over: a flood of bad
 * credentials costs the store one row per source and minute, not one per request.
 */
import { addrToBigInt, bigIntToAddr } from '@palisade/model'
import { tooMany } from './errors.js'

const WINDOW_MS = 60_000
/** How many times a name's limit a source may fail across all names in a minute. */
const SPRAY_FACTOR = 10
/** The distinct user names and reasons an event lists (a flood may try thousands). */
const LISTED = 5

/** One source's failures of one kind in one minute, as its audit event tells them. */
export interface FailureSummary {
  /** `request.authentication_failed` (API credentials) or `user.login_failed` (a password). */
  readonly event_type: string
  readonly src_ip: string
  readonly count: number
  readonly first_at: string
  readonly last_at: string
  /** Up to five of the user names tried, and of the reasons given. */
  readonly usernames: readonly string[]
  readonly reasons: readonly string[]
}

/** A summary being counted: the same fields, its lists still growing. */
type Counting = { -readonly [K in keyof FailureSummary]: FailureSummary[K] } & {
  usernames: string[]
  reasons: string[]
}

interface Window {
  readonly start: number
  count: number
  /** Failures per name tried; bounded by the source's own limit. */
  readonly byName: Map<string, number>
  readonly byType: Map<string, Counting>
}

/**
 * The source a failure is counted against: an IPv4 address, or the /64 of an IPv6 one (a single
 * host may send from every address of its /64).
 */
export function sourceOf(ip: string): string {
  try {
    const { family, value } = addrToBigInt(ip)
    if (family === 4 || value >> 32n === 0xffffn) return ip
    return `${bigIntToAddr(6, (value >> 64n) << 64n)}/64`
  } catch {
    return ip
  }
}

/** A name as counted and listed: long ones are cut, so a flood cannot grow memory by length. */
const nameOf = (username: string) => username.slice(0, 64)

export class AuthFailures {
  readonly #windows = new Map<string, Window>()
  readonly #ended: FailureSummary[] = []

  /**
   * `perMinute` failures of one name from one source are answered; past that the name gets 429
   * from that source until the minute ends (and the whole source past ten times that).
   */
  constructor(
    private readonly perMinute: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Throws the 429 of a name that failed too often from this source this minute, or of a source
   * that failed too often across names; costs no store access.
   */
  check(ip: string, username: string): void {
    const t = this.clock()
    const w = this.#windows.get(sourceOf(ip))
    if (!w || t - w.start >= WINDOW_MS) return
    if (
      w.count >= this.perMinute * SPRAY_FACTOR ||
      (w.byName.get(nameOf(username)) ?? 0) >= this.perMinute
    )
      throw tooMany(Math.ceil((w.start + WINDOW_MS - t) / 1000))
  }

  /** Counts a failure from `ip`; its event is written once the source's minute is over. */
  fail(ip: string, eventType: string, username: string, reason: string): void {
    const src = sourceOf(ip)
    const t = this.clock()
    let w = this.#windows.get(src)
    if (!w || t - w.start >= WINDOW_MS) {
      if (w) this.#ended.push(...w.byType.values())
      w = { start: t, count: 0, byName: new Map(), byType: new Map() }
      this.#windows.set(src, w)
    }
    const name = nameOf(username)
    w.count++
    w.byName.set(name, (w.byName.get(name) ?? 0) + 1)
    const at = new Date(t).toISOString()
    let s = w.byType.get(eventType)
    if (!s) {
      s = {
        event_type: eventType,
        src_ip: src,
        count: 0,
        first_at: at,
        last_at: at,
        usernames: [],
        reasons: [],
      }
      w.byType.set(eventType, s)
    }
    s.count++
    s.last_at = at
    if (s.usernames.length < LISTED && !s.usernames.includes(name)) s.usernames.push(name)
    if (s.reasons.length < LISTED && !s.reasons.includes(reason)) s.reasons.push(reason)
  }

  /** The summaries of every minute that is over (all of them with `all`), each given once. */
  takeEnded(all = false): FailureSummary[] {
    const t = this.clock()
    for (const [src, w] of this.#windows)
      if (all || t - w.start >= WINDOW_MS) {
        this.#ended.push(...w.byType.values())
        this.#windows.delete(src)
      }
    return this.#ended.splice(0)
  }
}
