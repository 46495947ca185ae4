/**
 * A helper process that lives inside one lab namespace. It reads JSON commands, one per line,
 * and answers one JSON line each: `listen` opens TCP and UDP echo ports, `probe` tries
 * connections with a short timeout, `relay` carries a unix socket's connections to a TCP
 * address here (unix sockets are reachable from every namespace), `expose` the other way: a
 * TCP port here to a unix socket (a server in the test process, reached from the namespace). It exits when its input
 * closes or after its lifetime (argument 1, in ms; 0 = none, for the demo; default
 * MAX_LIFETIME_MS), so it can never outlive the test that started it.
 */
import { createSocket } from 'node:dgram'
import type { Server, Socket } from 'node:net'
import { createConnection, createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { request as httpsRequest } from 'node:https'

const MAX_LIFETIME_MS = 15 * 60_000

/**
 * `refused`: a TCP reset or an ICMP port unreachable (our reject); `unreachable`: any other ICMP
 * destination unreachable (host, network, administratively prohibited: a firewalld-like
 * reject); `timeout`: no answer (a drop).
 */
export type ProbeOutcome = 'open' | 'timeout' | 'refused' | 'unreachable' | 'error'
export interface ProbeTarget {
  readonly proto: 'tcp' | 'udp'
  readonly host: string
  readonly port: number
}
export type PeerCommand =
  | {
      readonly id: number
      readonly op: 'listen'
      readonly tcp: readonly number[]
      readonly udp: readonly number[]
    }
  | {
      readonly id: number
      readonly op: 'probe'
      readonly targets: readonly ProbeTarget[]
      readonly timeoutMs: number
    }
  | {
      readonly id: number
      readonly op: 'https'
      readonly url: string
      readonly method: string
      readonly ca: string
      readonly auth?: string
      readonly body?: string
    }
  | {
      readonly id: number
      readonly op: 'hold'
      readonly key: string
      readonly host: string
      readonly port: number
    }
  | { readonly id: number; readonly op: 'echo'; readonly key: string; readonly timeoutMs: number }
  | {
      readonly id: number
      readonly op: 'relay'
      readonly path: string
      readonly host: string
      readonly port: number
    }
  | {
      readonly id: number
      readonly op: 'expose'
      readonly host: string
      readonly port: number
      readonly path: string
    }
  | {
      readonly id: number
      readonly op: 'rate'
      readonly host: string
      readonly port: number
      readonly seconds: number
      readonly parallel: number
    }

const servers: Server[] = []
const sockets: Socket[] = []
const udpSockets: ReturnType<typeof createSocket>[] = []

function listen(tcp: readonly number[], udp: readonly number[]): Promise<void> {
  const all: Promise<void>[] = []
  for (const port of tcp) {
    const s = createServer((c) => {
      sockets.push(c)
      c.on('error', () => undefined)
      c.pipe(c)
    })
    servers.push(s)
    all.push(
      new Promise((ok, fail) =>
        s.once('error', fail).listen({ port, host: '::', backlog: 65535 }, ok),
      ),
    )
  }
  for (const port of udp) {
    const s = createSocket({ type: 'udp6' })
    s.on('message', (msg, from) => s.send(msg, from.port, from.address))
    udpSockets.push(s)
    all.push(new Promise((ok, fail) => s.once('error', fail).bind(port, '::', ok)))
  }
  return Promise.all(all).then(() => undefined)
}

const outcomeOf = (code: string | undefined): ProbeOutcome =>
  code === 'ECONNREFUSED'
    ? 'refused'
    : // EACCES: Linux's errno for ICMPv6 "administratively prohibited"
      code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EACCES'
      ? 'unreachable'
      : 'error'

function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const c = createConnection({ host: t.host, port: t.port })
    const done = (o: ProbeOutcome) => {
      clearTimeout(timer)
      c.destroy()
      resolve(o)
    }
    const timer = setTimeout(() => done('timeout'), timeoutMs)
    c.once('connect', () => done('open'))
    c.once('error', (e: NodeJS.ErrnoException) => done(outcomeOf(e.code)))
  })
}

function probeUdp(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const s = createSocket({ type: t.host.includes(':') ? 'udp6' : 'udp4' })
    const done = (o: ProbeOutcome) => {
      clearTimeout(timer)
      s.close()
      resolve(o)
    }
    const timer = setTimeout(() => done('timeout'), timeoutMs)
    s.once('message', () => done('open'))
    // An ICMP unreachable arrives as an error on a connected socket.
    s.once('error', (e: NodeJS.ErrnoException) => done(outcomeOf(e.code)))
    s.connect(t.port, t.host, () => s.send('palisade-probe'))
  })
}

/** Connect-then-close as fast as possible for a bounded time; returns connections made. */
async function rate(
  host: string,
  port: number,
  seconds: number,
  parallel: number,
): Promise<{ connections: number; failures: number; seconds: number }> {
  const end = performance.now() + Math.min(seconds, 60) * 1000
  let connections = 0
  let failures = 0
  const worker = async () => {
    while (performance.now() < end) {
      const o = await probeTcp({ proto: 'tcp', host, port }, 1000)
      if (o === 'open') connections++
      else failures++
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, 64)) }, worker))
  return { connections, failures, seconds: (performance.now() - t0) / 1000 }
}

/** One HTTPS request from inside this namespace (the lab's addresses are reachable only here). */
function https(
  cmd: Extract<PeerCommand, { op: 'https' }>,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      cmd.url,
      {
        method: cmd.method,
        ca: cmd.ca,
        timeout: 30_000,
        ...(cmd.auth && { auth: cmd.auth }),
        // A JSON client: answers that come in more than one format (traffic records) come as JSON.
        headers: {
          accept: 'application/json',
          ...(cmd.body !== undefined && { 'content-type': 'application/json' }),
        },
      },
      (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      },
    )
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')))
    req.on('error', reject)
    req.end(cmd.body)
  })
}

/** Carries each connection to unix socket `path` to host:port, both ways. */
function relay(path: string, host: string, port: number): Promise<void> {
  const s = createServer((c) => {
    const up = createConnection({ host, port })
    c.on('error', () => up.destroy())
    up.on('error', () => c.destroy())
    c.pipe(up).pipe(c)
  })
  servers.push(s)
  return new Promise((ok, fail) => s.once('error', fail).listen(path, ok))
}

/** Carries each connection to host:port here to unix socket `path`, both ways. */
function expose(host: string, port: number, path: string): Promise<void> {
  const s = createServer((c) => {
    const down = createConnection({ path })
    c.on('error', () => down.destroy())
    down.on('error', () => c.destroy())
    c.pipe(down).pipe(c)
  })
  servers.push(s)
  return new Promise((ok, fail) => s.once('error', fail).listen(port, host, ok))
}

/** Long-lived connections, to check that established traffic survives policy changes. */
const held = new Map<string, Socket>()
function hold(key: string, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host, port })
    c.once('connect', () => {
      held.set(key, c)
      resolve()
    })
    c.once('error', reject)
  })
}
function echo(key: string, timeoutMs: number): Promise<boolean> {
  const c = held.get(key)
  if (!c || c.destroyed) return Promise.resolve(false)
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      c.off('data', onData)
      resolve(false)
    }, timeoutMs)
    const onData = () => {
      clearTimeout(timer)
      resolve(true)
    }
    c.once('data', onData)
    c.write('ping')
  })
}

async function handle(cmd: PeerCommand): Promise<unknown> {
  if (cmd.op === 'https') return { id: cmd.id, ok: true, response: await https(cmd) }
  if (cmd.op === 'hold') {
    await hold(cmd.key, cmd.host, cmd.port)
    return { id: cmd.id, ok: true }
  }
  if (cmd.op === 'echo') return { id: cmd.id, ok: true, echoed: await echo(cmd.key, cmd.timeoutMs) }
  if (cmd.op === 'rate')
    return { id: cmd.id, ok: true, rate: await rate(cmd.host, cmd.port, cmd.seconds, cmd.parallel) }
  if (cmd.op === 'relay') {
    await relay(cmd.path, cmd.host, cmd.port)
    return { id: cmd.id, ok: true }
  }
  if (cmd.op === 'expose') {
    await expose(cmd.host, cmd.port, cmd.path)
    return { id: cmd.id, ok: true }
  }
  if (cmd.op === 'listen') {
    await listen(cmd.tcp, cmd.udp)
    return { id: cmd.id, ok: true }
  }
  const results = await Promise.all(
    cmd.targets.map((t) =>
      t.proto === 'tcp' ? probeTcp(t, cmd.timeoutMs) : probeUdp(t, cmd.timeoutMs),
    ),
  )
  return { id: cmd.id, ok: true, results }
}

const lifetimeMs = process.argv[2] === undefined ? MAX_LIFETIME_MS : Number(process.argv[2])
if (lifetimeMs > 0) setTimeout(() => process.exit(0), lifetimeMs).unref()
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let cmd: PeerCommand
  try {
    cmd = JSON.parse(line) as PeerCommand
  } catch {
    process.stdout.write(`${JSON.stringify({ id: -1, ok: false, error: 'not JSON' })}\n`)
    return
  }
  handle(cmd).then(
    (reply) => process.stdout.write(`${JSON.stringify(reply)}\n`),
    (e: Error) =>
      process.stdout.write(`${JSON.stringify({ id: cmd.id, ok: false, error: e.message })}\n`),
  )
})
rl.on('close', () => process.exit(0))
