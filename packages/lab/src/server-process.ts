import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopChild } from './child.js'
import { palisadeInNamespace } from './palisade-cli.js'
import { waitFor } from './agent-process.js'
import { LabPeer } from './peer.js'

export interface Bootstrap {
  readonly org_id: number
  readonly api_user: string
  readonly api_secret: string
  readonly ca_cert: string
  readonly url: string
}

/** A real `palisade server` inside a lab namespace, with a client for its API. */
export class LabServer {
  #child: ChildProcess | undefined
  #log = ''
  bootstrap!: Bootstrap
  #ca = ''
  #peer: LabPeer | undefined

  private constructor(
    readonly ns: string,
    readonly address: string,
    readonly port: number,
    readonly dataDir: string,
  ) {}

  /**
   * `dataDir` defaults to a new temporary directory; `cleanup()` deletes it either way. A server
   * joining another on one database is given the first one's `bootstrap` (it writes none).
   */
  static async start(
    ns: string,
    address: string,
    port = 8443,
    extraArgs: string[] = [],
    dataDir?: string,
    bootstrap?: Bootstrap,
  ): Promise<LabServer> {
    const s = new LabServer(
      ns,
      address,
      port,
      dataDir ?? (await mkdtemp(join(tmpdir(), 'palisade-lab-server-'))),
    )
    s.spawn(extraArgs)
    s.#peer = LabPeer.start(ns)
    s.bootstrap =
      bootstrap ??
      (await waitFor(
        `the server in ${ns} to start (log: ${s.#log.slice(-300)})`,
        async () =>
          JSON.parse(await readFile(join(s.dataDir, 'bootstrap.json'), 'utf8')) as Bootstrap,
        30_000,
      ))
    s.#ca = await readFile(s.bootstrap.ca_cert, 'utf8')
    await waitFor(
      'the server to answer',
      async () =>
        (await s.api('GET', '/api/v2/product_version')).status === 200 ? true : undefined,
      bootstrap ? 30_000 : 10_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message} (server log: ${s.#log.slice(-600)})`, { cause: e })
    })
    return s
  }

  spawn(extraArgs: string[] = []): void {
    const child = spawn(
      'ip',
      palisadeInNamespace(this.ns, [
        'server',
        '--listen',
        `${this.address}:${this.port}`,
        '--data-dir',
        this.dataDir,
        ...extraArgs,
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child.stdout?.on('data', (b: Buffer) => (this.#log += b.toString()))
    child.stderr?.on('data', (b: Buffer) => (this.#log += b.toString()))
    this.#child = child
  }

  get log(): string {
    return this.#log
  }

  get endpoint(): string {
    return `${this.address}:${this.port}`
  }

  /** An API call as the bootstrap admin, made from inside the lab (its addresses live there). */
  api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }> {
    if (!this.#peer) throw new Error('the lab server is not started')
    return this.#peer.https(
      method,
      `https://${this.address}:${this.port}${path}`,
      this.#ca,
      body,
      this.bootstrap ? `${this.bootstrap.api_user}:${this.bootstrap.api_secret}` : undefined,
    )
  }

  /** An API call that must answer `want`; its body. */
  async apiOk(
    method: string,
    path: string,
    body: unknown,
    want: number,
  ): Promise<Record<string, unknown>> {
    const r = await this.api(method, path, body)
    if (r.status !== want)
      throw new Error(
        `${method} ${path} answered ${r.status}, not ${want}: ${JSON.stringify(r.body)}`,
      )
    return r.body as Record<string, unknown>
  }

  /** A pairing profile with these labels and enforcement, and an activation code for it. */
  async activationCode(
    name: string,
    labels: readonly string[],
    enforcement = 'full',
  ): Promise<string> {
    const p = await this.apiOk(
      'POST',
      '/api/v2/orgs/1/pairing_profiles',
      { name, enforcement_mode: enforcement, labels: labels.map((href) => ({ href })) },
      201,
    )
    const key = await this.apiOk('POST', `/api/v2${String(p.href)}/pairing_key`, {}, 200)
    return String(key.activation_code)
  }

  /** A draft rule set in `scope` with one rule: consumers may reach providers on these TCP ports. */
  async allowRule(
    name: string,
    scope: readonly string[],
    rule: { providers: string; consumers: string; tcpPorts: readonly number[] },
  ): Promise<void> {
    const rs = await this.apiOk(
      'POST',
      '/api/v2/orgs/1/sec_policy/draft/rule_sets',
      { name, scopes: [scope.map((href) => ({ label: { href } }))] },
      201,
    )
    await this.apiOk(
      'POST',
      `/api/v2${String(rs.href)}/sec_rules`,
      {
        providers: [{ label: { href: rule.providers } }],
        consumers: [{ label: { href: rule.consumers } }],
        ingress_services: rule.tcpPorts.map((port) => ({ port, proto: 6 })),
      },
      201,
    )
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return stopChild(this.#child, signal)
  }

  async cleanup(): Promise<void> {
    await this.stop()
    await this.#peer?.stop()
    await rm(this.dataDir, { recursive: true, force: true })
  }
}
