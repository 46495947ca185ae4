import type { AgentStatus } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { LabAgent } from './agent-process.js'
import { forwardPort } from './console-forward.js'
import type { DemoFlow, DemoHost } from './demo-estate.js'
import { demoFlows, demoHosts, SCOPES } from './demo-estate.js'
import { seedDemo } from './demo-seed.js'
import type { FlowOutcome } from './demo-traffic.js'
import { DemoTraffic, tamper } from './demo-traffic.js'
import { addDocker, addFirewalld, addHandWritten, addUfw } from './foreign-field.js'
import { Lab } from './netns.js'
import { LabPeer } from './peer.js'
import { LabServer } from './server-process.js'

/** Every namespace the demo makes is named so; one demo runs on a machine at a time. */
export const DEMO_PREFIX = 'pdemo-'
/** In the data dir: what a running demo made, so that `--down` finds it from another process. */
export const DEMO_STATE = 'demo.json'
const SOCKET = join(tmpdir(), `${DEMO_PREFIX}console.sock`)

export interface DemoOptions {
  readonly hosts: number
  readonly dataDir: string
  /** Where the console is reachable from this machine (HOST:PORT; port 0: any free one). */
  readonly listen: string
  /** Seconds between two tamperings (0: never). */
  readonly tamperEvery: number
  readonly log: (line: string) => void
}

export interface DemoState {
  readonly pid: number
  readonly prefix: string
  readonly console_url: string
  readonly bootstrap: string
  readonly socket: string
  readonly started_at: string
  readonly hosts: readonly (Omit<DemoHost, 'template'> & { ns: string; ip4: string })[]
  readonly flows: readonly DemoFlow[]
}

/** One line of the demo's status: a host as its agent and the server see it. */
export interface HostView {
  readonly name: string
  readonly backend: string
  readonly enforcement: string
  readonly mode: string
  readonly sync: string
  readonly repairs: number
  readonly lastRepair?: string
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * `palisade demo`: a live estate in network namespaces on this machine, and nothing outside
 * them but its data dir, a unix socket and the console port on this machine's loopback.
 */
export class Demo {
  #tamperTimer: NodeJS.Timeout | undefined
  #tampered = 0
  #stopping: Promise<void> | undefined

  private constructor(
    readonly lab: Lab,
    readonly server: LabServer,
    readonly hosts: readonly DemoHost[],
    readonly agents: ReadonlyMap<string, LabAgent>,
    readonly peers: ReadonlyMap<string, LabPeer>,
    readonly traffic: DemoTraffic,
    readonly state: DemoState,
    private readonly forward: { close(): Promise<void> },
    private readonly o: DemoOptions,
  ) {}

  static async up(o: DemoOptions): Promise<Demo> {
    const dataDir = resolve(o.dataDir)
    await claimDataDir(dataDir)
    const left = await Lab.sweep(DEMO_PREFIX)
    if (left.length > 0) o.log(`removed what an earlier demo left: ${left.join(', ')}`)
    const [listenHost, listenPort] = splitListen(o.listen)
    const hosts = demoHosts(o.hosts)
    const t0 = performance.now()
    const step = (what: string) =>
      o.log(`${what} (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
    const lab = await Lab.create(['srv', ...hosts.map((h) => h.name)], DEMO_PREFIX)
    const srv = lab.host('srv')
    const parts: { stop(): Promise<void> }[] = []
    try {
      // Router solicitations a new interface keeps sending would be the first "flows" shown.
      for (const h of hosts)
        await runChecked(lab.host(h.name).run, 'sysctl', [
          '-qw',
          'net.ipv6.conf.eth0.router_solicitations=0',
        ])
      step(`made ${hosts.length + 2} network namespaces (${DEMO_PREFIX}*)`)
      const server = await LabServer.start(srv.ns, srv.ip4, 8443, [], dataDir)
      parts.push({ stop: () => server.cleanup() })
      step(`started the policy server in ${srv.ns} (${srv.ip4}:8443)`)
      const codes = await seedDemo(server, hosts)
      step(`seeded labels, a rule set, ${SCOPES.length} coexistence scopes; provisioned`)
      for (const h of hosts) await addForeign(lab, h)
      step('added the foreign firewalls (firewalld, Docker, ufw, a hand-written rule)')
      const agents = new Map<string, LabAgent>()
      await Promise.all(
        hosts.map(async (h) => {
          const a = await LabAgent.pair(
            lab.host(h.name).ns,
            h.backend,
            server,
            codes.get(h.name) ?? '',
            { heartbeatMs: 2000, surveyMs: 10_000, flows: { intervalMs: 5000 } },
            join(dataDir, 'agents', h.name),
          )
          agents.set(h.name, a)
          parts.push({ stop: () => a.stop() })
        }),
      )
      step(`paired ${hosts.length} agents`)
      const peers = new Map<string, LabPeer>()
      for (const h of hosts) {
        const p = LabPeer.start(lab.host(h.name).ns, 0)
        peers.set(h.name, p)
        parts.push({ stop: () => p.stop() })
        await p.listen(h.tcp, [])
      }
      const relay = LabPeer.start(srv.ns, 0)
      parts.push({ stop: () => relay.stop() })
      await rm(SOCKET, { force: true })
      await relay.relay(SOCKET, srv.ip4, 8443)
      const forward = await forwardPort(listenHost, listenPort, SOCKET)
      const consoleUrl = `https://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${forward.port}`
      // The server wrote its own address, which only the lab can reach; this one works here.
      const bootstrapFile = join(dataDir, 'bootstrap.json')
      const boot = JSON.parse(await readFile(bootstrapFile, 'utf8')) as Record<string, unknown>
      await writeFile(bootstrapFile, `${JSON.stringify({ ...boot, url: consoleUrl }, null, 2)}\n`, {
        mode: 0o600,
      })
      const flows = demoFlows(hosts)
      const traffic = new DemoTraffic(flows, peers, (h) => lab.host(h).ip4)
      const state: DemoState = {
        pid: process.pid,
        prefix: DEMO_PREFIX,
        console_url: consoleUrl,
        bootstrap: bootstrapFile,
        socket: SOCKET,
        started_at: new Date().toISOString(),
        hosts: hosts.map(({ template: _, ...h }) => ({
          ...h,
          ns: lab.host(h.name).ns,
          ip4: lab.host(h.name).ip4,
        })),
        flows,
      }
      await writeFile(join(dataDir, DEMO_STATE), `${JSON.stringify(state, null, 2)}\n`)
      const demo = new Demo(lab, server, hosts, agents, peers, traffic, state, forward, o)
      await demo.#waitSynced()
      step('every agent applied its policy and reported it')
      await traffic.round()
      traffic.start(3000, (e) => o.log(`traffic: ${e.message}`))
      if (o.tamperEvery > 0) demo.#scheduleTamper()
      return demo
    } catch (e) {
      for (const p of parts.reverse()) await p.stop()
      await lab.destroy()
      await rm(SOCKET, { force: true })
      throw e
    }
  }

  async #waitSynced(): Promise<void> {
    for (let i = 0; ; i++) {
      const views = await this.view()
      if (views.every((v) => v.sync === 'synced')) return
      if (i > 120)
        throw new Error(
          `the agents did not all sync within a minute: ${views.map((v) => `${v.name} ${v.sync}`).join(', ')}`,
        )
      await sleep(500)
    }
  }

  #scheduleTamper(): void {
    this.#tamperTimer = setTimeout(() => {
      const h = this.hosts[this.#tampered++ % this.hosts.length] as DemoHost
      tamper(this.lab.host(h.name).run, h.backend).then(
        (what) => this.o.log(`tampered with ${h.name}: ${what}`),
        (e: Error) => this.o.log(`could not tamper with ${h.name}: ${e.message}`),
      )
      this.#scheduleTamper()
    }, this.o.tamperEvery * 1000)
  }

  /** Each host as its agent (mode, repairs) and the server (sync) see it now. */
  async view(): Promise<HostView[]> {
    const list = (await this.server.apiOk(
      'GET',
      '/api/v2/orgs/1/workloads?managed=true',
      undefined,
      200,
    )) as unknown as {
      hostname: string
      agent: { status: { security_policy_sync_state: string } }
    }[]
    const sync = new Map(list.map((w) => [w.hostname, w.agent.status.security_policy_sync_state]))
    return Promise.all(
      this.hosts.map(async (h) => {
        const s: AgentStatus | undefined = await this.agents.get(h.name)?.status()
        const t = s?.enforcement.tampering
        return {
          name: h.name,
          backend: h.backend,
          enforcement: s?.policy?.enforcementMode ?? h.enforcement,
          mode: s?.policy?.mode ?? '-',
          sync: sync.get(h.name) ?? 'not paired',
          repairs: t?.repairs ?? 0,
          ...(t?.lastAt && { lastRepair: t.lastAt }),
        }
      }),
    )
  }

  outcomes(): FlowOutcome[] {
    return this.traffic.outcomes()
  }

  /** Stops everything and removes what the demo made, its data dir included. */
  down(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#tamperTimer)
      await this.traffic.stop()
      await this.forward.close()
      for (const p of this.peers.values()) await p.stop()
      await Promise.all([...this.agents.values()].map((a) => a.stop()))
      await this.server.cleanup()
      await this.lab.destroy()
      await removeDemoFiles(resolve(this.o.dataDir), this.state.socket)
    })()
    return this.#stopping
  }
}

function splitListen(listen: string): [string, number] {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen)
  if (!m?.[1] || Number(m[2]) > 65535)
    throw new Error(`--listen must be HOST:PORT (for example 127.0.0.1:8443), not "${listen}"`)
  return [m[1], Number(m[2])]
}

/** The demo owns its data dir: a fresh one, or one an earlier demo left (which it clears). */
async function claimDataDir(dir: string): Promise<void> {
  const state = join(dir, DEMO_STATE)
  if (existsSync(state)) {
    const prior = JSON.parse(await readFile(state, 'utf8')) as DemoState
    if (alive(prior.pid))
      throw new Error(
        `a demo is running (pid ${prior.pid}, ${prior.console_url}); stop it with Ctrl-C or \`palisade demo --down\``,
      )
    await removeDemoFiles(dir, prior.socket)
  } else if (existsSync(dir) && (await readdir(dir)).length > 0) {
    throw new Error(
      `${dir} holds files that are not a demo's: choose an empty or new directory with --data-dir`,
    )
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Removes the data dir, only if it is a demo's (it holds the demo's state file). */
async function removeDemoFiles(dir: string, socket: string): Promise<void> {
  await rm(socket, { force: true })
  if (existsSync(join(dir, DEMO_STATE))) await rm(dir, { recursive: true, force: true })
}

async function addForeign(lab: Lab, h: DemoHost): Promise<void> {
  const run = lab.host(h.name).run
  const variant = h.backend === 'iptables-legacy' ? 'legacy' : 'nft'
  switch (h.foreign) {
    case 'firewalld':
      return addFirewalld(run, [
        { name: 'public', match: { iifname: 'eth0' }, allowTcp: h.foreignTcp },
        { name: 'internal', match: { saddr: '10.0.0.0/8' }, allowTcp: [22, 9090] },
      ])
    case 'docker':
      return addDocker(run, variant)
    case 'ufw':
      return addUfw(run, h.foreignTcp)
    case 'hand-written':
      for (const port of h.foreignTcp)
        await addHandWritten(run, variant, port, 'debug port, remove after the incident')
  }
}

/**
 * `palisade demo --down`: stops a demo another process runs (or left), deletes every namespace
 * named for the demo with the processes and rules inside, and the demo's files. Returns what
 * it removed, for the user.
 */
export async function demoDown(dataDir: string): Promise<string[]> {
  const dir = resolve(dataDir)
  const done: string[] = []
  const stateFile = join(dir, DEMO_STATE)
  const state = existsSync(stateFile)
    ? (JSON.parse(await readFile(stateFile, 'utf8')) as DemoState)
    : undefined
  if (state && alive(state.pid)) {
    process.kill(state.pid, 'SIGTERM')
    for (let i = 0; i < 300 && alive(state.pid); i++) await sleep(100)
    if (alive(state.pid)) process.kill(state.pid, 'SIGKILL')
    done.push(`stopped the demo (pid ${state.pid})`)
  }
  const swept = await Lab.sweep(DEMO_PREFIX)
  if (swept.length > 0) done.push(`deleted namespaces ${swept.join(', ')}`)
  if (state) {
    await removeDemoFiles(dir, state.socket)
    done.push(`deleted ${dir}`)
  }
  await rm(SOCKET, { force: true })
  return done
}
