import type { AgentEvent, AgentStatus } from '@palisade/agent'
import { readJson, statePaths } from '@palisade/agent'
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopChild } from './child.js'
import { palisadeInNamespace, runPalisade } from './palisade-cli.js'

/** Polls `check` until it returns a value, or fails after `ms` with what was last seen. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  ms = 10_000,
  everyMs = 20,
): Promise<T> {
  const end = performance.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (performance.now() > end)
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
      )
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** A real `palisade agent run` process inside a lab namespace, with its own state dir. */
export class LabAgent {
  readonly stateDir: string
  readonly policyFile: string
  #child: ChildProcess | undefined
  #log = ''
  /** Paired with a server (policy from it) rather than following a policy file. */
  #paired = false

  private constructor(
    readonly ns: string,
    private readonly backend: string,
    stateDir = join(tmpdir(), `${ns}-state`),
  ) {
    this.stateDir = stateDir
    this.policyFile = join(tmpdir(), `${ns}-policy.json`)
  }

  /**
   * Starts an agent and waits until it applied `policy`; `env` adds to its environment,
   * `config` is its config.json (the defaults for what it leaves out).
   */
  static async start(
    ns: string,
    backend: string,
    policy: { version?: number },
    env: Record<string, string> = {},
    config?: Record<string, unknown>,
  ): Promise<LabAgent> {
    const a = await LabAgent.launch(ns, backend, policy, env, config)
    await a.waitApplied(policy.version ?? 1)
    return a
  }

  /** Starts an agent without waiting for anything (for agents that are expected to struggle). */
  static async launch(
    ns: string,
    backend: string,
    policy: unknown,
    env: Record<string, string> = {},
    config?: Record<string, unknown>,
  ): Promise<LabAgent> {
    const a = new LabAgent(ns, backend)
    await rm(a.stateDir, { recursive: true, force: true })
    if (config) {
      const paths = statePaths(a.stateDir)
      await mkdir(paths.dir, { recursive: true, mode: 0o700 })
      await writeFile(paths.config, JSON.stringify(config))
    }
    await a.writePolicy(policy)
    a.spawn(env)
    return a
  }

  /**
   * Pairs an agent with a lab server by activation code (the real `palisade agent activate`),
   * then runs it; `config` adds to its config.json (e.g. a short heartbeat for tests).
   * `stateDir` defaults to one in the temporary directory, named for the namespace.
   */
  static async pair(
    ns: string,
    backend: string,
    server: { endpoint: string; bootstrap: { ca_cert: string } },
    code: string,
    config: Record<string, unknown> = {},
    stateDir?: string,
  ): Promise<LabAgent> {
    const a = new LabAgent(ns, backend, stateDir)
    a.#paired = true
    await rm(a.stateDir, { recursive: true, force: true })
    const out = await runPalisade(ns, [
      'agent',
      'activate',
      '--management-server',
      server.endpoint,
      '--hostname',
      ns.replace(/^[^-]*-/, ''),
      '--activation-code',
      code,
      '--ca-cert',
      server.bootstrap.ca_cert,
      '--state-dir',
      a.stateDir,
      '--backend',
      backend,
    ])
    if (out.code !== 0) throw new Error(`palisade agent activate failed in ${ns}: ${out.out}`)
    const cfgPath = join(a.stateDir, 'config.json')
    await writeFile(
      cfgPath,
      JSON.stringify({ ...(JSON.parse(await readFile(cfgPath, 'utf8')) as object), ...config }),
    )
    a.spawn()
    return a
  }

  /**
   * Runs an agent paired by hand with a server at `url` (no activation: for a fake server in
   * the test); `config` adds to its config.json.
   */
  static async attach(
    ns: string,
    backend: string,
    server: { url: string; agentId: string; token: string },
    config: Record<string, unknown> = {},
  ): Promise<LabAgent> {
    const a = new LabAgent(ns, backend)
    a.#paired = true
    await rm(a.stateDir, { recursive: true, force: true })
    const paths = statePaths(a.stateDir)
    await mkdir(paths.dir, { recursive: true, mode: 0o700 })
    await writeFile(
      paths.config,
      JSON.stringify({
        server: { url: server.url, caCertFile: null, agentId: server.agentId },
        ...config,
      }),
    )
    await writeFile(join(paths.dir, 'credentials.json'), JSON.stringify({ token: server.token }), {
      mode: 0o600,
    })
    a.spawn()
    return a
  }

  spawn(env: Record<string, string> = {}): void {
    const args = palisadeInNamespace(this.ns, [
      'agent',
      'run',
      '--state-dir',
      this.stateDir,
      // A paired agent takes its policy from the server; otherwise from the policy file.
      ...(this.#paired ? [] : ['--policy-file', this.policyFile]),
      '--backend',
      this.backend,
    ])
    // Its temporary files (the scripts of its tool session) go where cleanup removes them, also
    // those of an agent killed before it could remove them itself.
    mkdirSync(this.#tmpDir, { recursive: true, mode: 0o700 })
    const child = spawn('ip', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TMPDIR: this.#tmpDir, ...env },
    })
    child.stdout?.on('data', (b: Buffer) => (this.#log += b.toString()))
    child.stderr?.on('data', (b: Buffer) => (this.#log += b.toString()))
    this.#child = child
  }

  get log(): string {
    return this.#log
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** Holds the agent still (SIGSTOP), for a change made of several commands to land at once. */
  pause(): void {
    this.#signal('SIGSTOP')
  }

  resume(): void {
    this.#signal('SIGCONT')
  }

  #signal(signal: NodeJS.Signals): void {
    // `ip netns exec` execs the command, so the child is the agent itself.
    if (!this.#child?.kill(signal)) throw new Error(`agent in ${this.ns} is not running`)
  }

  async writePolicy(policy: unknown): Promise<void> {
    await writeFile(`${this.policyFile}.tmp`, JSON.stringify(policy))
    const { rename } = await import('node:fs/promises')
    await rename(`${this.policyFile}.tmp`, this.policyFile)
  }

  status(): Promise<AgentStatus | undefined> {
    return readJson<AgentStatus>(statePaths(this.stateDir).status)
  }

  async events(): Promise<AgentEvent[]> {
    const text = await readFile(statePaths(this.stateDir).events, 'utf8').catch(() => '')
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AgentEvent)
  }

  /** Waits until the agent has applied and verified something, from whichever source. */
  waitHealthy(ms = 15_000): Promise<AgentStatus> {
    return waitFor(
      `agent in ${this.ns} to enforce (log: ${this.#log.slice(-500)})`,
      async () => {
        const s = await this.status()
        return s?.pid === this.#child?.pid &&
          s?.enforcement.health === 'healthy' &&
          s.enforcement.applied
          ? s
          : undefined
      },
      ms,
    )
  }

  /** Waits until the agent reports version `version` applied and verified, and healthy. */
  waitApplied(version: number, ms = 15_000): Promise<AgentStatus> {
    return waitFor(
      `agent in ${this.ns} to apply version ${version} (log: ${this.#log.slice(-500)})`,
      async () => {
        const s = await this.status()
        // The status must come from this process: a restarted agent finds the last one's file.
        if (!s || s.pid !== this.#child?.pid) return undefined
        const applied =
          s.enforcement.health === 'healthy' && s.enforcement.applied?.version === version
        return applied && s.policy?.version === version ? s : undefined
      },
      ms,
    )
  }

  /** Waits for the n-th tampering event (1-based). */
  waitTampering(n: number, ms = 10_000): Promise<AgentEvent> {
    return waitFor(
      `tampering event #${n} in ${this.ns}`,
      async () => (await this.events()).filter((e) => e.event_type === 'agent.tampering')[n - 1],
      ms,
    )
  }

  get running(): boolean {
    return (
      this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
    )
  }

  /** Asks the agent to re-read its policy file now (as `kill -HUP` would). */
  reload(): void {
    this.#child?.kill('SIGHUP')
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return stopChild(this.#child, signal)
  }

  async cleanup(): Promise<void> {
    await this.stop()
    await rm(this.stateDir, { recursive: true, force: true })
    await rm(this.#tmpDir, { recursive: true, force: true })
    await rm(this.policyFile, { force: true })
  }

  get #tmpDir(): string {
    return `${this.stateDir}-tmp`
  }
}
