import type { Backend, Ruleset } from '@palisade/firewall'
import type { Clock } from './clock.js'
import type { ChangeBatch, Dataplane } from './dataplane.js'
import type { ProcessStarter, Runner } from './exec.js'
import { CommandError } from './exec.js'
import { applyDesired } from './netfilter/apply.js'
import { NftMonitor } from './netfilter/monitor.js'
import { readOwn } from './netfilter/read-own.js'

/** How many of our own command pids are remembered to recognise our own change events. */
const OWN_PIDS = 256

/**
 * The kernel, through the real tools: `nft` or iptables and ipset to read and apply, and
 * `nft monitor` for change events. The pids of the commands it ran tell its own changes apart.
 */
export class KernelDataplane implements Dataplane {
  readonly #ownPids = new Set<number>()
  /** What the last apply read back, for the read that follows it. */
  #verified: Ruleset | undefined

  constructor(
    private readonly run: Runner,
    readonly backend: Backend,
    private readonly start: ProcessStarter,
    private readonly clock: Clock,
    /** The local log: a failed tool's own words go here, never to the server. */
    private readonly log: (line: Record<string, unknown>) => void = () => undefined,
  ) {}

  readonly #run: Runner = async (cmd, args, opts) => {
    const r = await this.run(cmd, args, opts)
    if (r.pid !== undefined) {
      this.#ownPids.add(r.pid)
      if (this.#ownPids.size > OWN_PIDS)
        this.#ownPids.delete(this.#ownPids.values().next().value as number)
    }
    return r
  }

  /**
   * The first read after an apply is answered by what that apply read back (verifyApplied:
   * read where it changed the kernel) instead of reading everything again, unless a change
   * by another process, or lost events, were seen in between; every other read reads.
   */
  read(opts: { elements: boolean }) {
    const verified = this.#verified
    this.#verified = undefined
    if (verified) return Promise.resolve(verified)
    return readOwn(this.#run, this.backend, opts).catch(this.#logged)
  }

  async apply(...[desired, actual, opts]: Parameters<Dataplane['apply']>) {
    this.#verified = undefined
    const applied = await applyDesired(this.#run, desired, actual, opts).catch(this.#logged)
    this.#verified = applied.after
    return applied.plan
  }

  readonly #logged = (e: unknown): never => {
    if (e instanceof CommandError)
      this.log({
        msg: 'firewall tool failed',
        cmd: e.cmd,
        code: e.result.code,
        stderr: e.result.stderr.slice(0, 4000),
      })
    throw e
  }

  watch(onEvent: Parameters<Dataplane['watch']>[0]) {
    const monitor = new NftMonitor({
      start: this.start,
      now: () => this.clock.now(),
      onEvent: (e) => {
        if (e.kind !== 'change' || !this.isOwn(e.batch)) this.#verified = undefined
        onEvent(e)
      },
    })
    monitor.start()
    return { stop: () => monitor.stop() }
  }

  isOwn(b: ChangeBatch): boolean {
    return b.pid !== undefined && this.#ownPids.has(b.pid)
  }
}
