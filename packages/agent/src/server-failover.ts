/**
 * The servers of a cluster, for the agent's channel: `--management-server` names one server,
 * several (`a:8443,b:8443`) or a DNS name with several addresses. Calls and downloads (an
 * upgrade's build) go to the server that answered last; when it cannot be reached (refused,
 * reset, no answer) the same call goes to the next, at once, round the list. The kernel keeps
 * the last ruleset meanwhile: moving between servers leaves no gap in the policy. A name's
 * addresses are asked for again when none of them answers or after a minute (the running
 * agent answers with the failsafe's, see server-addresses.ts); its certificate is checked
 * against the name or the address (every server of a cluster names its own addresses, see the
 * server's tls.ts).
 */
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { systemResolver } from './server-addresses.js'
import type { Reply, ServerConfig } from './server-client.js'
import { ServerClient, ServerUnavailableError } from './server-client.js'

type Method = Parameters<ServerClient['call']>[0]

/** `--management-server` as the channel's URLs: `HOST:PORT` items separated by commas. */
export function serverUrlsOf(spec: string): string[] {
  const items = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (items.length === 0) throw new Error('--management-server is empty: give HOST:PORT')
  return items.map((item) => {
    let url: URL
    try {
      url = new URL(`https://${item}`)
    } catch {
      throw new Error(`--management-server: "${item}" is not HOST:PORT`)
    }
    if (url.pathname !== '/' || url.username || url.search)
      throw new Error(`--management-server: "${item}" is not HOST:PORT`)
    return url.origin
  })
}

/** Every server the agent may use: `urls` from a cluster's activation, else the one `url`. */
export const serverUrls = (server: Pick<ServerConfig, 'url' | 'urls'>): readonly string[] =>
  server.urls && server.urls.length > 0 ? server.urls : [server.url]

/** Each server's host and port, for the failsafe (a name is resolved there). */
export const serverEndpoints = (
  server: Pick<ServerConfig, 'url' | 'urls'>,
): { address: string; port: number }[] =>
  serverUrls(server).map((u) => {
    const url = new URL(u)
    return { address: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443) }
  })

/** One place to send a call: an address, and the name it was found by. */
interface Target {
  readonly url: string
  readonly name?: string
}

/** All addresses of a name (A and AAAA). */
export type ResolveAll = (name: string) => Promise<readonly string[]>
/** As the failsafe resolves a name (see server-addresses.ts), where no failsafe is running. */
const resolveAll: ResolveAll = async (name) => (await systemResolver(name)).map((a) => a.address)

/** How long a name's addresses are used before it is resolved again. */
const RESOLVED_FOR_MS = 60_000

export interface FailoverOptions {
  readonly urls: readonly string[]
  readonly caCertFile: string
  readonly authorization?: string
  readonly log: (line: Record<string, unknown>) => void
  readonly resolve?: ResolveAll
  /** A client for one target (tests give their own). */
  readonly connect?: (target: Target) => Pick<ServerClient, 'call' | 'stream'>
}

export class FailoverClient {
  readonly #o: FailoverOptions
  readonly #clients = new Map<string, Pick<ServerClient, 'call' | 'stream'>>()
  #targets: readonly Target[] = []
  #resolvedAt = -Infinity
  /** The target that answered last. */
  #current: Target | undefined

  constructor(o: FailoverOptions) {
    this.#o = o
  }

  /** The server in use (the first listed until one answered). */
  get url(): string {
    return this.#current?.url ?? (this.#o.urls[0] as string)
  }

  /** As `ServerClient.call`, each argument passed on (the reply bound too). */
  call(
    method: Method,
    path: string,
    body?: unknown,
    timeoutMs?: number,
    maxReplyBytes?: number,
  ): Promise<Reply> {
    return this.#anyServer((c) => c.call(method, path, body, timeoutMs, maxReplyBytes))
  }

  /** As `ServerClient.stream` (an upgrade's download), from any server that answers. */
  stream(path: string, timeoutMs: number): Promise<IncomingMessage> {
    return this.#anyServer((c) => c.stream(path, timeoutMs))
  }

  async #anyServer<T>(send: (c: Pick<ServerClient, 'call' | 'stream'>) => Promise<T>): Promise<T> {
    let fresh = performance.now() - this.#resolvedAt > RESOLVED_FOR_MS
    let last: unknown
    for (;;) {
      if (fresh) await this.#resolve()
      const start = Math.max(0, this.#targets.indexOf(this.#current as Target))
      for (let i = 0; i < this.#targets.length; i++) {
        const t = this.#targets[(start + i) % this.#targets.length] as Target
        try {
          const r = await send(this.#client(t))
          if (t !== this.#current) {
            if (this.#current)
              this.#o.log({
                msg: 'moved to another policy server',
                from: this.#current.url,
                to: t.url,
              })
            this.#current = t
          }
          return r
        } catch (e) {
          if (!(e instanceof ServerUnavailableError)) throw e
          last = e
        }
      }
      // None answered: names may have moved; look once more with fresh addresses.
      if (fresh) throw last
      fresh = true
    }
  }

  async #resolve(): Promise<void> {
    const resolve = this.#o.resolve ?? resolveAll
    const found = await Promise.all(
      this.#o.urls.map(async (u): Promise<Target[]> => {
        const url = new URL(u)
        const host = url.hostname.replace(/^\[|\]$/g, '')
        if (isIP(host)) return [{ url: u }]
        // A name that does not resolve now is tried by name (the connection says why).
        const addresses = await resolve(host).catch(() => [])
        if (addresses.length === 0) return [{ url: u }]
        return addresses.map((a) => {
          const at = new URL(u)
          at.hostname = isIP(a) === 6 ? `[${a}]` : a
          return { url: at.origin, name: host }
        })
      }),
    )
    const targets = found.flat()
    // Keep the one in use if it is still there (the same object: `indexOf` finds it).
    const kept = this.#current && targets.findIndex((t) => t.url === this.#current?.url)
    if (kept !== undefined && kept >= 0) targets[kept] = this.#current as Target
    this.#targets = targets
    this.#resolvedAt = performance.now()
  }

  #client(t: Target): Pick<ServerClient, 'call' | 'stream'> {
    const key = `${t.url} ${t.name ?? ''}`
    let c = this.#clients.get(key)
    if (!c) {
      c =
        this.#o.connect?.(t) ??
        new ServerClient(
          { url: t.url, caCertFile: this.#o.caCertFile, ...(t.name && { servername: t.name }) },
          this.#o.authorization,
        )
      this.#clients.set(key, c)
    }
    return c
  }
}
