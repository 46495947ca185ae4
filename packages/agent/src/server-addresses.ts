/**
 * The policy server's addresses, for the failsafe. `--management-server` may name the server
 * by DNS: the failsafe then allows every address the name resolves to (A and AAAA), and the
 * name is resolved again when the shortest TTL runs out (bounded, so a TTL of 0 is no busy
 * loop and a long one does not keep a moved server blocked for a day).
 *
 * While the name does not resolve, the addresses resolved last stay allowed: a DNS outage must
 * not cut the agent off from its server. Before it ever resolved there is nothing to allow,
 * and no policy can be compiled (the agent says why; the kernel keeps what it has).
 */
import { lookup, Resolver as DnsResolver } from 'node:dns/promises'
import { isIP } from 'node:net'
import type { Clock, Timer } from './clock.js'

export interface ResolvedAddress {
  readonly address: string
  /** Seconds the answer may be kept. */
  readonly ttl: number
}

/** Resolves a name to all its IPv4 and IPv6 addresses; rejects when it has none. */
export type NameResolver = (name: string) => Promise<readonly ResolvedAddress[]>

export interface ServerEndpoint {
  readonly address: string
  readonly port: number
}

/** Re-resolution bounds: the TTL is clamped into [min, max]; failures are retried after min. */
export const RESOLVE_BOUNDS = { minMs: 5_000, maxMs: 300_000 } as const
/** The TTL assumed for an answer from the system's resolver (`/etc/hosts`), which has none. */
const LOOKUP_TTL_S = 60

/**
 * DNS first (it tells the TTL); a name DNS does not know is looked up the way the rest of the
 * host does (`/etc/hosts`, nsswitch), as the channel's own connection would.
 */
export const systemResolver: NameResolver = async (name) => {
  const dns = new DnsResolver({ timeout: 3000, tries: 2 })
  const answers = await Promise.allSettled([
    dns.resolve4(name, { ttl: true }),
    dns.resolve6(name, { ttl: true }),
  ])
  const found = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []))
  if (found.length > 0) return found
  const all = await lookup(name, { all: true, verbatim: true })
  return all.map((a) => ({ address: a.address, ttl: LOOKUP_TTL_S }))
}

export interface ServerAddressesOptions {
  /** The server URL's host: an address or a name. */
  readonly host: string
  readonly port: number
  readonly resolve: NameResolver
  readonly clock: Clock
  readonly log: (line: Record<string, unknown>) => void
  /** The set of addresses changed. */
  readonly onChange: () => void
}

export class ServerAddresses {
  readonly #o: ServerAddressesOptions
  #endpoints: readonly ServerEndpoint[] | undefined
  #error = 'not resolved yet'
  #timer: Timer | undefined
  #stopped = false

  constructor(o: ServerAddressesOptions) {
    this.#o = o
    if (!this.isName) this.#endpoints = [{ address: this.host, port: o.port }]
  }

  /** The server URL's host, an address or a name, without brackets. */
  get host(): string {
    return this.#o.host.replace(/^\[|\]$/g, '')
  }

  /** Whether the host is a name (resolved and followed) rather than an address. */
  get isName(): boolean {
    return isIP(this.host) === 0
  }

  /** The endpoints to allow; throws, saying why, while a name never resolved. */
  get endpoints(): readonly ServerEndpoint[] {
    if (this.#endpoints) return this.#endpoints
    throw new Error(
      `the policy server's name ${this.#o.host} does not resolve (${this.#error}), so the failsafe cannot allow it; check DNS or /etc/hosts, or give --management-server as an address`,
    )
  }

  /** Resolves the name now and then again as its TTL says; an address needs nothing. */
  async start(): Promise<void> {
    if (this.isName) await this.#refresh()
  }

  stop(): void {
    this.#stopped = true
    this.#timer?.cancel()
  }

  async #refresh(): Promise<void> {
    let next: number = RESOLVE_BOUNDS.minMs
    try {
      const found = await this.#o.resolve(this.#o.host)
      if (found.length === 0) throw new Error('no addresses')
      const addresses = [...new Set(found.map((a) => a.address))].sort()
      const ttlMs = Math.min(...found.map((a) => a.ttl)) * 1000
      next = Math.min(RESOLVE_BOUNDS.maxMs, Math.max(RESOLVE_BOUNDS.minMs, ttlMs))
      const before = this.#endpoints?.map((e) => e.address).join(' ')
      if (addresses.join(' ') !== before) {
        this.#endpoints = addresses.map((address) => ({ address, port: this.#o.port }))
        this.#o.log({ msg: 'policy server resolved', name: this.#o.host, addresses })
        this.#o.onChange()
      }
    } catch (e) {
      this.#error = (e as Error).message
      this.#o.log({
        msg: 'cannot resolve the policy server',
        name: this.#o.host,
        error: this.#error,
        keeping: this.#endpoints?.map((x) => x.address) ?? [],
      })
    }
    if (this.#stopped) return
    this.#timer = this.#o.clock.setTimeout(() => void this.#refresh(), next, { background: true })
  }
}

/**
 * Every server of a cluster (`--management-server a:8443,b:8443`, or one): the failsafe allows
 * the addresses of each. A listed name that never resolved adds nothing while the others are
 * known, so one bad name does not stop enforcement; with none known there is nothing to allow.
 */
export class ClusterAddresses {
  constructor(readonly servers: readonly ServerAddresses[]) {}

  /** Every known endpoint; throws, saying why, while none is known. */
  get endpoints(): readonly ServerEndpoint[] {
    const known: ServerEndpoint[] = []
    let why: Error | undefined
    for (const s of this.servers) {
      try {
        known.push(...s.endpoints)
      } catch (e) {
        why ??= e as Error
      }
    }
    if (known.length === 0 && why !== undefined) throw why
    return known
  }

  /**
   * The addresses the failsafe allows for `name`, for the channel to connect to: it must reach
   * the server only where the failsafe lets it (a hosts file and DNS may disagree). Empty while
   * the name never resolved.
   */
  addressesOf(name: string): readonly string[] {
    return this.servers
      .filter((s) => s.host === name)
      .flatMap((s) => {
        try {
          return s.endpoints.map((e) => e.address)
        } catch {
          return []
        }
      })
  }

  async start(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.start()))
  }

  stop(): void {
    for (const s of this.servers) s.stop()
  }
}
