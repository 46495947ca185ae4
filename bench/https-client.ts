/** What the server benchmarks share: a keep-alive HTTPS client and an in-process server. */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { Agent, request } from 'node:https'
import { tmpdir } from 'node:os'
import { createSecureContext } from 'node:tls'
import { join } from 'node:path'
import type { ServerOptions } from '@palisade/server'
import { LONG_POLL_SECONDS } from '@palisade/protocol'
import { startServer } from '@palisade/server'

export interface Client {
  call(
    method: string,
    path: string,
    body?: unknown,
    auth?: string,
  ): Promise<{ status: number; body: unknown }>
}

export function client(
  url: string,
  ca: string,
  basic: string,
  extraHeaders: Record<string, string> = {},
): Client {
  // One TLS context for every connection: a `ca` given per request builds a new one each time,
  // which costs the client more than the server's whole answer.
  const agent = new Agent({
    keepAlive: true,
    maxSockets: Infinity,
    // each simulated agent keeps its connection, as a real one does (the default keeps 256)
    maxFreeSockets: Infinity,
    secureContext: createSecureContext({ ca }),
  })
  const once = (
    method: string,
    path: string,
    payload: string | undefined,
    auth: string | undefined,
  ): Promise<{ status: number; body: unknown }> =>
    new Promise((resolve, reject) => {
      const req = request(
        `${url}${path}`,
        {
          method,
          agent,
          headers: {
            ...extraHeaders,
            authorization: auth ?? basic,
            ...(payload !== undefined && { 'content-type': 'application/json' }),
          },
          // as long as an agent waits for a long-poll (see server-link.ts): a shorter wait would
          // end held polls and reconnect, a load no real fleet makes
          timeout: (LONG_POLL_SECONDS + 20) * 1000,
        },
        (res) => {
          let text = ''
          res.on('data', (c: Buffer) => (text += c.toString()))
          // answered on the next turn: the socket is back in the pool by then, so a call made
          // by whoever awaits this one reuses it instead of opening a new connection
          res.on('end', () =>
            setImmediate(() =>
              resolve({
                status: res.statusCode ?? 0,
                body:
                  text && res.headers['content-type'] === 'application/json'
                    ? (JSON.parse(text) as unknown)
                    : text,
              }),
            ),
          )
        },
      )
      req.on('error', (e: NodeJS.ErrnoException) =>
        // A kept-alive connection the server closed just as we reused it: the request never
        // reached it, so it is sent again once, on a new connection.
        req.reusedSocket && e.code === 'ECONNRESET'
          ? void once(method, path, payload, auth).then(resolve, reject)
          : reject(e),
      )
      req.end(payload)
    })
  return {
    call: (method, path, body, auth) =>
      once(method, path, body === undefined ? undefined : JSON.stringify(body), auth),
  }
}

/** Calls `f` from `workers` loops for `seconds`; returns completed calls per second and failures. */
export async function rate(
  seconds: number,
  workers: number,
  f: (i: number) => Promise<boolean>,
): Promise<{ perSecond: number; count: number; failures: number }> {
  const end = performance.now() + seconds * 1000
  let ok = 0
  let failures = 0
  let n = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        if (await f(n++)) ok++
        else failures++
      }
    }),
  )
  return { perSecond: Math.round(ok / ((performance.now() - t0) / 1000)), count: ok, failures }
}

/** Calls `f(0)` to `f(count - 1)`, `width` at a time. */
export async function inParallel(
  count: number,
  width: number,
  f: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await f(next++)
    }),
  )
}

export async function withServer<T>(
  database: string | undefined,
  f: (c: Client, url: string, ca: string, basic: string) => Promise<T>,
  options: Partial<ServerOptions> & { dataDir?: string } = {},
): Promise<T> {
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'palisade-bench-')))
  const server = await startServer({
    listen: '127.0.0.1:0',
    dataDir: dir,
    tls: 'auto',
    ratePerMinute: 1e12,
    activationsPerMinute: 1e12,
    ...(database && { database }),
    ...options,
  })
  try {
    const boot = JSON.parse(await readFile(server.bootstrapFile, 'utf8')) as {
      api_user: string
      api_secret: string
      ca_cert: string
    }
    const ca = await readFile(boot.ca_cert, 'utf8')
    const basic = `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`
    return await f(client(server.url, ca, basic), server.url, ca, basic)
  } finally {
    await server.close()
    // a data dir the caller gave stays: the caller reads it afterwards
    if (!options.dataDir) await rm(dir, { recursive: true, force: true })
  }
}
