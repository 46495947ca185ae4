import { randomBytes } from 'node:crypto'
import { constants as osConstants } from 'node:os'
import type { Runner } from '@palisade/agent'
import { netnsRunner, runChecked, runLocal } from '@palisade/agent'

/** Kernel tests need root; without it they must fail loudly, never skip. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'kernel tests need root (network namespaces and netfilter); run the test command as root, as CI does',
    )
  }
}

export interface LabHost {
  readonly name: string
  readonly ns: string
  readonly ip4: string
  readonly ip6: string
  readonly run: Runner
}

const live = new Set<string>()
let exitHookInstalled = false

/**
 * Deletes every namespace this process created, and ends what still runs in them, also when a
 * test throws or the process exits (see endOnSignals for a process ended by a signal).
 */
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  const sweep = () => {
    // Synchronous on purpose: this runs while the process is exiting.
    const { spawnSync } = process.getBuiltinModule('node:child_process')
    for (const ns of live) {
      const pids = spawnSync('ip', ['netns', 'pids', ns]).stdout?.toString() ?? ''
      for (const pid of pids.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {
          // gone already
        }
      }
      spawnSync('ip', ['netns', 'del', ns])
    }
    live.clear()
  }
  process.on('exit', sweep)
}

/**
 * Makes SIGINT, SIGTERM and SIGHUP end this process through its exit hooks, so the namespaces
 * it made go with it (by default a signal ends it without them). For a program's entry point
 * (the benchmark runner), not for a test runner's workers, which handle signals themselves.
 */
export function endOnSignals(): void {
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(s, () => process.exit(128 + (osConstants.signals[s] ?? 0)))
}

async function addNamespace(ns: string): Promise<void> {
  await runChecked(runLocal, 'ip', ['netns', 'add', ns])
  live.add(ns)
  await runChecked(netnsRunner(ns), 'ip', ['link', 'set', 'lo', 'up'])
}

/**
 * A switch namespace with a bridge and one namespace per host, all addressed from
 * 198.18.0.0/24 and fd00:198:18::/64, so no traffic leaves the lab's own namespaces.
 */
export class Lab {
  readonly #hosts = new Map<string, LabHost>()
  readonly #switchNs: string
  readonly prefix: string

  private constructor(prefix: string) {
    this.prefix = prefix
    this.#switchNs = `${prefix}sw`
  }

  /**
   * `prefix` names the namespaces (default: random, so tests never meet); a fixed one lets a
   * later process find what this one left (`Lab.sweep`).
   */
  static async create(hostNames: readonly string[], prefix?: string): Promise<Lab> {
    requireRoot()
    installExitHook()
    const lab = new Lab(prefix ?? `pl${randomBytes(3).toString('hex')}-`)
    try {
      const sw = netnsRunner(lab.#switchNs)
      await addNamespace(lab.#switchNs)
      await runChecked(sw, 'ip', ['link', 'add', 'br0', 'type', 'bridge'])
      await runChecked(sw, 'ip', ['link', 'set', 'br0', 'up'])
      let i = 0
      for (const name of hostNames) await lab.#addHost(name, ++i)
    } catch (e) {
      await lab.destroy()
      throw e
    }
    return lab
  }

  async #addHost(name: string, index: number): Promise<void> {
    const ns = `${this.prefix}${name}`
    await addNamespace(ns)
    const sw = netnsRunner(this.#switchNs)
    const run = netnsRunner(ns)
    const port = `p${index}`
    await runChecked(sw, 'ip', [
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ])
    await runChecked(sw, 'ip', ['link', 'set', port, 'master', 'br0', 'up'])
    const ip4 = `198.18.0.${10 + index}`
    const ip6 = `fd00:198:18::${10 + index}`
    await runChecked(run, 'ip', ['addr', 'add', `${ip4}/24`, 'dev', 'eth0'])
    await runChecked(run, 'ip', ['-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad'])
    await runChecked(run, 'ip', ['link', 'set', 'eth0', 'up'])
    // Many short connections from one client: widen the port range and reuse TIME_WAIT. A
    // long accept queue: a server that pauses 50 ms at 10,000 connections a second would
    // otherwise overflow it, and every client would wait a second for its SYN to be sent again.
    // Ports below 30000 are where lab hosts listen: kept out of the range their own outgoing
    // connections draw from, so a listener never finds its port taken by a client socket.
    await runChecked(run, 'sysctl', [
      '-qw',
      'net.ipv4.ip_local_port_range=1024 65535',
      'net.ipv4.ip_local_reserved_ports=1024-29999',
      'net.ipv4.tcp_tw_reuse=1',
      'net.core.somaxconn=65535',
    ])
    this.#hosts.set(name, { name, ns, ip4, ip6, run })
  }

  host(name: string): LabHost {
    const h = this.#hosts.get(name)
    if (!h) throw new Error(`lab has no host ${name}`)
    return h
  }

  /** A namespace of its own, not on the bridge (for tests that only need a kernel). */
  static async isolated(): Promise<{ ns: string; run: Runner; destroy: () => Promise<void> }> {
    requireRoot()
    installExitHook()
    const ns = `pl${randomBytes(3).toString('hex')}-solo`
    await addNamespace(ns)
    return {
      ns,
      run: netnsRunner(ns),
      destroy: async () => {
        await stopProcessesIn([ns])
        await runLocal('ip', ['netns', 'del', ns])
        live.delete(ns)
      },
    }
  }

  /** The namespaces named `prefix...` on this machine, whoever made them. */
  static async named(prefix: string): Promise<string[]> {
    const list = await runChecked(runLocal, 'ip', ['netns', 'list'])
    return list
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(prefix))
  }

  /**
   * Removes every namespace named `prefix...`, also ones another process made and left: the
   * processes inside are stopped, then the namespace is deleted with everything in it
   * (interfaces, rules). Returns the namespaces removed.
   */
  static async sweep(prefix: string): Promise<string[]> {
    requireRoot()
    const names = await Lab.named(prefix)
    await stopProcessesIn(names)
    for (const ns of names) {
      await runChecked(runLocal, 'ip', ['netns', 'del', ns])
      live.delete(ns)
    }
    return names
  }

  /**
   * Stops whatever still runs inside the lab (an agent a test left, a supervisor's restart
   * loop), then deletes its namespaces. Found by namespace, never by a pid file: a pid read
   * from a file may by now be another process (pids wrap at 32,768 here).
   */
  async destroy(): Promise<void> {
    const mine = [...this.#hosts.values()]
      .map((h) => h.ns)
      .concat(this.#switchNs)
      .filter((ns) => live.has(ns))
    await stopProcessesIn(mine)
    for (const ns of mine) {
      await runLocal('ip', ['netns', 'del', ns])
      live.delete(ns)
    }
  }
}

/** SIGTERM to every process inside `names`, then SIGKILL to what is left after 5 s. */
async function stopProcessesIn(names: readonly string[]): Promise<void> {
  const pidsIn = async (ns: string) =>
    (await runLocal('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean).map(Number)
  const signal = async (sig: NodeJS.Signals) => {
    let left = 0
    for (const ns of names)
      for (const pid of await pidsIn(ns)) {
        left++
        try {
          process.kill(pid, sig)
        } catch {
          // gone already
        }
      }
    return left
  }
  const gone = async (ms: number) => {
    const end = performance.now() + ms
    while (performance.now() < end && (await Promise.all(names.map(pidsIn))).flat().length > 0)
      await new Promise((r) => setTimeout(r, 50))
  }
  if ((await signal('SIGTERM')) === 0) return
  await gone(5000)
  await signal('SIGKILL')
  await gone(5000)
}
