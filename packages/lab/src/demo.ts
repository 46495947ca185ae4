import type { AgentStatus } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { LabAgent } from './agent-process.js'
import { forwardPort } from './console-forward.js'
import type { DemoHost } from './demo-estate.js'
import type { DemoState } from './demo-state.js'
import {
  claimDataDir,
  DEMO_PREFIX,
  DEMO_SOCKET,
  DEMO_STATE,
  removeDemoFiles,
} from './demo-state.js'
import { demoFlows, demoHosts, SCOPES } from './demo-estate.js'
import { seedDemo } from './demo-seed.js'
import type { FlowOutcome } from './demo-traffic.js'
import { DemoTraffic, tamper } from './demo-traffic.js'
import { addDocker, addFirewalld, addHandWritten, addUfw } from './foreign-field.js'
import { Lab } from './netns.js'
import { LabPeer } from './peer.js'
import { LabServer } from './server-process.js'

export interface DemoOptions {
  readonly hosts: number
  readonly dataDir: string
  /** Where the console is reachable from this machine (HOST:PORT; port 0: any free one). */
  readonly listen: string
  /** Seconds between two tamperings (0: never). */
  readonly tamperEvery: number
  readonly log: (line: string) => void
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
    const left = await claimDataDir(dataDir)
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
      await rm(DEMO_SOCKET, { force: true })
      await relay.relay(DEMO_SOCKET, srv.ip4, 8443)
      const forward = await forwardPort(listenHost, listenPort, DEMO_SOCKET)
      parts.push({ stop: () => forward.close() })
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
        socket: DEMO_SOCKET,
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
      await removeDemoFiles(dataDir)
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
      await removeDemoFiles(resolve(this.o.dataDir))
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
