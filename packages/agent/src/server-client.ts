import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { request as httpRequest } from 'node:http'
import { request } from 'node:https'
import { pipeline } from 'node:stream/promises'
import type { PeerCertificate } from 'node:tls'
import { checkServerIdentity } from 'node:tls'
import { errorReplyOf } from '@palisade/protocol'

export interface ServerConfig {
  /** https://HOST:PORT */
  readonly url: string
  /** A cluster's servers, `url` first (see server-failover.ts); absent: `url` alone. */
  readonly urls?: readonly string[]
  /** The server's CA, pinned: no other CA is trusted for this connection. */
  readonly caCertFile: string
  readonly agentId: string
}

export class ServerUnavailableError extends Error {}

/** A reply longer than the caller allows: refused before it is held in memory or parsed. */
export class ReplyTooLargeError extends Error {}

/** What a reply may hold unless the caller says otherwise. */
export const DEFAULT_MAX_REPLY_BYTES = 256 * 1024 * 1024

export interface Reply {
  readonly status: number
  readonly body: unknown
}

/**
 * An HTTPS channel to the policy server, with the server's CA pinned: the agent's (a bearer
 * token) and the command line's (an API key).
 */
export class ServerClient {
  #ca: string | undefined

  constructor(
    /** No CA file: plain HTTP, for a server run with `--tls off` (the command line only). */
    /** `servername`: the name `url`'s address was found by; the certificate may name either. */
    private readonly cfg: { url: string; caCertFile?: string | null; servername?: string },
    /** The Authorization header's value. */
    private readonly authorization?: string,
  ) {}

  /** A GET whose reply is streamed to the caller (a download), over the same pinned channel. */
  async stream(path: string, timeoutMs: number): Promise<IncomingMessage> {
    const url = new URL(path, this.cfg.url)
    const tls = url.protocol === 'https:'
    if (tls && !this.cfg.caCertFile)
      throw new ServerUnavailableError(`${this.cfg.url} uses TLS: its CA certificate is needed`)
    if (tls) this.#ca ??= await readFile(this.cfg.caCertFile as string, 'utf8')
    return new Promise((resolve, reject) => {
      const req = (tls ? request : httpRequest)(
        url,
        {
          method: 'GET',
          ...(tls && { ca: this.#ca }),
          timeout: timeoutMs,
          headers: this.authorization ? { authorization: this.authorization } : {},
        },
        resolve,
      )
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      req.on('error', (e) =>
        reject(
          new ServerUnavailableError(
            `cannot reach the policy server at ${this.cfg.url}: ${e.message}`,
            { cause: e },
          ),
        ),
      )
      req.end()
    })
  }

  async call(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    timeoutMs = 15_000,
    maxReplyBytes = DEFAULT_MAX_REPLY_BYTES,
  ): Promise<Reply> {
    const url = new URL(path, this.cfg.url)
    const tls = url.protocol === 'https:'
    if (tls && !this.cfg.caCertFile)
      throw new ServerUnavailableError(`${this.cfg.url} uses TLS: its CA certificate is needed`)
    if (tls) this.#ca ??= await readFile(this.cfg.caCertFile as string, 'utf8')
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const req = (tls ? request : httpRequest)(
        url,
        {
          method,
          ...(tls && { ca: this.#ca }),
          ...(tls && this.cfg.servername !== undefined && withName(this.cfg.servername, url)),
          timeout: timeoutMs,
          headers: {
            accept: 'application/json',
            ...(payload !== undefined && {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(payload),
            }),
            ...(this.authorization && { authorization: this.authorization }),
          },
        },
        (res) => {
          const tooLarge = () =>
            req.destroy(
              new ReplyTooLargeError(
                `the reply to ${method} ${url.pathname} is larger than ${maxReplyBytes} bytes, so it is refused`,
              ),
            )
          if (Number(res.headers['content-length'] ?? 0) > maxReplyBytes) return tooLarge()
          const chunks: Buffer[] = []
          let bytes = 0
          res.on('data', (c: Buffer) => {
            bytes += c.length
            if (bytes > maxReplyBytes) {
              chunks.length = 0
              return tooLarge()
            }
            chunks.push(c)
          })
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString()
            let parsed: unknown = text
            try {
              parsed = text ? (JSON.parse(text) as unknown) : undefined
            } catch {
              // not JSON: keep the text for the error message
            }
            resolve({ status: res.statusCode ?? 0, body: parsed })
          })
        },
      )
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      req.on('error', (e) =>
        reject(
          e instanceof ReplyTooLargeError
            ? e
            : new ServerUnavailableError(
                `cannot reach the policy server at ${this.cfg.url}: ${e.message}`,
                { cause: e },
              ),
        ),
      )
      req.end(payload)
    })
  }
}

/** TLS to an address found by `name`: SNI says the name; the certificate names either. */
function withName(name: string, url: URL) {
  const address = url.hostname.replace(/^\[|\]$/g, '')
  return {
    servername: name,
    checkServerIdentity: (_host: string, cert: PeerCertificate) =>
      checkServerIdentity(name, cert) && checkServerIdentity(address, cert),
  }
}

/** A file downloaded whole: its size and SHA-256, or the server's refusal. */
export type Download =
  | { readonly ok: true; readonly size: number; readonly sha256: string }
  | { readonly ok: false; readonly reply: Reply }

/**
 * Downloads `path` into `file` (created 0700, never over an existing one), hashing it as it
 * streams; more than `maxBytes` is refused as it comes in. The caller checks size and hash.
 */
export async function download(
  client: Pick<ServerClient, 'stream'>,
  path: string,
  file: string,
  maxBytes: number,
  timeoutMs = 300_000,
): Promise<Download> {
  const res = await client.stream(path, timeoutMs)
  if (res.statusCode !== 200) {
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const c of res as AsyncIterable<Buffer>) {
      if ((bytes += c.length) <= DEFAULT_ERROR_BYTES) chunks.push(c)
    }
    const text = Buffer.concat(chunks).toString()
    let body: unknown = text
    try {
      body = JSON.parse(text) as unknown
    } catch {
      // not JSON: the text is the message
    }
    return { ok: false, reply: { status: res.statusCode ?? 0, body } }
  }
  const hash = createHash('sha256')
  let size = 0
  const out = createWriteStream(file, { flags: 'wx', mode: 0o700 })
  await pipeline(
    res,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const c of source) {
        size += c.length
        if (size > maxBytes)
          throw new ReplyTooLargeError(`${path} is larger than the ${maxBytes} bytes announced`)
        hash.update(c)
        yield c
      }
    },
    out,
  )
  return { ok: true, size, sha256: hash.digest('hex') }
}

const DEFAULT_ERROR_BYTES = 64 * 1024

/** The message of an API error reply (`[{token, message}]`), for people. */
export function replyError(r: Reply): string {
  const issues = errorReplyOf(r.body)
  if (issues) return issues.map((i) => i.message.slice(0, 500)).join('; ')
  return `HTTP ${r.status}${typeof r.body === 'string' && r.body ? `: ${r.body.slice(0, 200)}` : ''}`
}
