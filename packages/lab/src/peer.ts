import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { spawn } from 'node:child_process'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { nodeInNamespace } from './palisade-cli.js'
import type { PeerCommand, ProbeOutcome, ProbeTarget } from './peer-main.js'

interface PeerReply {
  readonly ok: boolean
  readonly error?: string
  readonly results?: ProbeOutcome[]
  readonly rate?: { connections: number; failures: number; seconds: number }
  readonly response?: { status: number; body: string; headers: Record<string, unknown> }
  readonly echoed?: boolean
}

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never

/** Drives a peer-main process inside a namespace: listen on ports, probe connections. */
export class LabPeer {
  readonly #child: ChildProcessWithoutNullStreams
  readonly #waiting = new Map<number, (reply: PeerReply) => void>()
  #next = 1

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child
    createInterface({ input: child.stdout }).on('line', (line) => {
      const reply = JSON.parse(line) as {
        id: number
        ok: boolean
        error?: string
        results?: ProbeOutcome[]
      }
      this.#waiting.get(reply.id)?.(reply)
      this.#waiting.delete(reply.id)
    })
    // A peer that is gone answers nothing more: what waits on it fails now, not in 30 s.
    child.once('close', () => {
      for (const answer of this.#waiting.values())
        answer({ ok: false, error: 'the lab peer exited' })
      this.#waiting.clear()
    })
  }

  /** `lifetimeMs`: the peer exits then at the latest (0: only when this process lets go of it). */
  static start(ns: string, lifetimeMs?: number): LabPeer {
    // Run from source (tests, benchmarks) or from the build, whichever this module is.
    const self = fileURLToPath(import.meta.url)
    const main = fileURLToPath(new URL(`./peer-main${extname(self)}`, import.meta.url))
    const args = lifetimeMs === undefined ? [] : [String(lifetimeMs)]
    const child = spawn('ip', nodeInNamespace(ns, main, args), {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    child.stderr.on('data', (b: Buffer) => process.stderr.write(`[peer ${ns}] ${b.toString()}`))
    return new LabPeer(child)
  }

  #send(cmd: Distribute<PeerCommand>): Promise<PeerReply> {
    const id = this.#next++
    if (this.#child.exitCode !== null || this.#child.signalCode !== null)
      return Promise.resolve({ ok: false, error: 'the lab peer exited' })
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`lab peer did not answer ${cmd.op} within 30 s`)),
        30_000,
      )
      this.#waiting.set(id, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      this.#child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`)
    })
  }

  async listen(tcp: readonly number[], udp: readonly number[]): Promise<void> {
    const r = await this.#send({ op: 'listen', tcp, udp })
    if (!r.ok) throw new Error(`lab peer could not listen: ${r.error}`)
  }

  async probe(targets: readonly ProbeTarget[], timeoutMs = 400): Promise<ProbeOutcome[]> {
    const r = await this.#send({ op: 'probe', targets, timeoutMs })
    if (!r.ok || !r.results) throw new Error(`lab peer could not probe: ${r.error}`)
    return r.results
  }

  /** New TCP connections per second to host:port over a bounded time. */
  async connectionRate(
    host: string,
    port: number,
    seconds: number,
    parallel = 1,
  ): Promise<{ perSecond: number; connections: number; failures: number }> {
    const r = await this.#send({ op: 'rate', host, port, seconds, parallel })
    if (!r.ok || !r.rate) throw new Error(`lab peer could not measure a rate: ${r.error}`)
    return {
      perSecond: r.rate.connections / r.rate.seconds,
      connections: r.rate.connections,
      failures: r.rate.failures,
    }
  }

  /** An HTTPS request made from inside this peer's namespace, trusting only `ca`. */
  async https(
    method: string,
    url: string,
    ca: string,
    body?: unknown,
    auth?: string,
  ): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }> {
    const r = await this.#send({
      op: 'https',
      method,
      url,
      ca,
      ...(auth && { auth }),
      ...(body !== undefined && { body: JSON.stringify(body) }),
    })
    if (!r.ok || !r.response)
      throw new Error(`lab peer request ${method} ${url} failed: ${r.error}`)
    const text = r.response.body
    return {
      status: r.response.status,
      body: text ? (JSON.parse(text) as unknown) : undefined,
      headers: r.response.headers,
    }
  }

  /** Carries connections made to unix socket `path` (from any namespace) to host:port here. */
  async relay(path: string, host: string, port: number): Promise<void> {
    const r = await this.#send({ op: 'relay', path, host, port })
    if (!r.ok) throw new Error(`lab peer could not relay ${path} to ${host}:${port}: ${r.error}`)
  }

  /** Carries connections made to host:port here to unix socket `path` (a server in the test). */
  async expose(host: string, port: number, path: string): Promise<void> {
    const r = await this.#send({ op: 'expose', host, port, path })
    if (!r.ok) throw new Error(`lab peer could not expose ${host}:${port} as ${path}: ${r.error}`)
  }

  /** Opens a TCP connection and keeps it, under `key`. */
  async hold(key: string, host: string, port: number): Promise<void> {
    const r = await this.#send({ op: 'hold', key, host, port })
    if (!r.ok) throw new Error(`lab peer could not connect to ${host}:${port}: ${r.error}`)
  }

  /** Whether the held connection `key` still carries data both ways. */
  async echo(key: string, timeoutMs = 1000): Promise<boolean> {
    const r = await this.#send({ op: 'echo', key, timeoutMs })
    return r.ok && r.echoed === true
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      // Gone already: by its own exit, or by a signal (Ctrl-C reaches the whole process group).
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) return resolve()
      this.#child.once('close', () => resolve())
      this.#child.stdin.end()
      setTimeout(() => this.#child.kill('SIGKILL'), 2000).unref()
    })
  }
}
