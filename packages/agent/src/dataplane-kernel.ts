import type { Backend, Ruleset } from '@palisade/firewall'
import type { Clock } from './clock.js'
import type { ChangeBatch, Dataplane } from './dataplane.js'
import type { ProcessStarter, Runner } from './exec.js'
import { CommandError } from './exec.js'
import { applyDesired } from './netfilter/apply.js'
import type { ChangeSignal } from './netfilter/change-signal.js'
import { takeSignal } from './netfilter/change-signal.js'
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
  /** The change signal taken just before the last read began. */
  #signal: ChangeSignal | undefined

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
  async read(opts: { elements: boolean; signal?: AbortSignal }) {
    // Taken before the read, so whatever changes after it, even during the read, shows in the
    // next look. The sets' part only when their contents are read: our own applies change set
    // contents only when followed by such a read. After an apply, a change another process
    // makes between the apply's read-back and this signal goes unseen until the periodic full
    // check: a window of one listing's time.
    const last = this.#signal
    this.#signal = undefined
    const signal = await takeSignal(this.#run, this.backend, { sets: opts.elements }).catch(
      this.#logged,
    )
    const verified = this.#verified
    this.#verified = undefined
    const actual = verified ?? (await readOwn(this.#run, this.backend, opts).catch(this.#logged))
    this.#signal = signal && { ...signal, sets: opts.elements ? signal.sets : last?.sets }
    return actual
  }

  async changed() {
    const last = this.#signal
    if (last === undefined) return undefined
    const now = await takeSignal(this.#run, this.backend, { sets: true }).catch(this.#logged)
    if (now === undefined) return undefined
    return { rules: now.rules !== last.rules, elements: now.sets !== last.sets }
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
