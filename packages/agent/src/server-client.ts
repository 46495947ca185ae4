import { request } from 'node:https'
import { readFile } from 'node:fs/promises'

export interface ServerConfig {
  /** https://HOST:PORT */
  readonly url: string
  /** The server's CA, pinned: no other CA is trusted for this connection. */
  readonly caCertFile: string
  readonly agentId: string
}

export class ServerUnavailableError extends Error {}

export interface Reply {
  readonly status: number
  readonly body: unknown
}

/** The agent's HTTPS channel to its policy server, with the server's CA pinned. */
export class ServerClient {
  #ca: string | undefined

  constructor(
    private readonly cfg: Pick<ServerConfig, 'url' | 'caCertFile'>,
    private readonly token?: string,
  ) {}

  async call(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    timeoutMs = 15_000,
  ): Promise<Reply> {
    this.#ca ??= await readFile(this.cfg.caCertFile, 'utf8')
    const url = new URL(path, this.cfg.url)
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          ca: this.#ca,
          timeout: timeoutMs,
          headers: {
            accept: 'application/json',
            ...(payload !== undefined && {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(payload),
            }),
            ...(this.token && { authorization: `Bearer ${this.token}` }),
          },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
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
          new ServerUnavailableError(
            `cannot reach the policy server at ${this.cfg.url}: ${e.message}`,
            { cause: e },
          ),
        ),
      )
      req.end(payload)
    })
  }
}

/** The message of an API error reply (`[{token, message}]`), for people. */
export function replyError(r: Reply): string {
  if (Array.isArray(r.body))
    return r.body.map((i: { message?: string; token?: string }) => i.message ?? i.token).join('; ')
  return `HTTP ${r.status}${typeof r.body === 'string' && r.body ? `: ${r.body.slice(0, 200)}` : ''}`
}
