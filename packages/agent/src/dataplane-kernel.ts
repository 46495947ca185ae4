import type { Backend, Ruleset } from '@palisade/firewall'
import { findTable, isFlowCountChange, NFT_TABLE } from '@palisade/firewall'
import type { Clock } from './clock.js'
import type { ChangeBatch, Dataplane, MonitorEvent } from './dataplane.js'
import { batchLines } from './dataplane.js'
import type { ProcessStarter, Runner, RunResult } from './exec.js'
import { CommandError } from './exec.js'
import { applyDesired } from './netfilter/apply.js'
import type { ChangeSignal } from './netfilter/change-signal.js'
import { ourSetHeaders, takeLook } from './netfilter/change-signal.js'
import { isShellCommit, isShellListing, ToolShell } from './netfilter/tool-shell.js'
import { filterFamiliesChanged, NftMonitor } from './netfilter/monitor.js'
import { readIptablesChanged, readOwn, terseIptablesFrom } from './netfilter/read-own.js'
import {
  filterDigestTool,
  IPSET_SESSION,
  NFT_SESSION,
  sessionFor,
} from './netfilter/session-protocol.js'
import { SessionUnavailable, ToolSession } from './netfilter/tool-session.js'

export interface KernelDataplaneOptions {
  /** The local log: a failed tool's own words go here, never to the server. */
  readonly log?: (line: Record<string, unknown>) => void
  /**
   * Runs before a full replacement of a table whose sets count flows (which empties them): the
   * flow reader takes the counts first.
   */
  readonly beforeCountsLost?: () => Promise<void>
  /**
   * How many looks (`changed`) make one that also takes what costs a tool: the sets' headers,
   * and the filter tables' listings where the digest cannot tell (1: every look).
   */
  readonly fullLookEvery?: number
}

/** What was known of the kernel, and the iptables filter tables changed since (see #knownBut). */
interface KnownBut {
  readonly rs: Ruleset
  readonly families: ReadonlySet<'ip' | 'ip6'>
}

/** How long an apply waits for the monitor to report its iptables-nft commit, before it reads. */
const COMMIT_REPORT_MS = 250
/** How many of our own command pids are remembered to recognise our own change events. */
const OWN_PIDS = 256

/**
 * The kernel, through the real tools: `nft` or iptables and ipset to read and apply, and
 * `nft monitor` for change events. The pids of the commands it ran tell its own changes apart.
 * nft's applies (up to 16 MB of script) and its reads without set contents, and small changes to
 * ipset elements, go to a tool kept running for them (see tool-session.ts), and the iptables
 * backends' listings and commits to a shell kept running for them (tool-shell.ts), until `close`.
 */
export class KernelDataplane implements Dataplane {
  readonly #ownPids = new Set<number>()
  readonly #session: ToolSession
  readonly #shell: ToolShell | undefined
  /** The iptables-legacy filter tables digest (see filterDigestTool), where it can run. */
  readonly #digest: ToolSession | undefined
  /** Looks taken: every `fullLookEvery`th takes the sets' part (see `changed`). */
  #looks = 0
  /**
   * What the last apply read back (`applied`: for the read that follows it, with the change
   * signal after it where the apply printed it), or what the last read found: the kernel as far
   * as we know, while nothing shows a change (without set contents, if that read left them out).
   */
  #known:
    { readonly rs: Ruleset; readonly applied: boolean; readonly signal?: ChangeSignal } | undefined
  /**
   * What was known when another process changed the iptables-nft filter tables of `families`
   * and nothing else: still true of the rest (the other family's table; the ipsets, whose
   * changes send no event and show at the next look). A read without set contents then lists
   * only those tables.
   */
  #knownBut: KnownBut | undefined
  /** Whether the change monitor runs: without it, a change to nf_tables shows nowhere. */
  #watching = false
  /** Who waits for the monitor to report the commit of which process (see #reported). */
  readonly #awaitingCommit = new Map<(seen: boolean) => void, number>()
  /** Counts changes by other processes (and lost events) the monitor reported. */
  #foreign = 0
  /**
   * Change events that came during an apply, while it runs: judged when it ended, once the
   * pids of its own commands are known (its own events often come before its tool has ended).
   */
  #duringApply: ChangeBatch[] | undefined
  /** The change signal taken just before the last read began, or with the look it was made of. */
  #signal: ChangeSignal | undefined
  /**
   * The last look, if it found our iptables-legacy rules changed and nothing else: the read
   * without set contents that follows it is made of its listings, not listed again.
   */
  #looked:
    | {
        readonly signal: ChangeSignal
        readonly saves: readonly [string, string]
        readonly ipsetHeaders: string
      }
    | undefined
  /**
   * Counts reads begun and applies begun and ended: a look during which it moved is not taken
   * for a read (it may have listed before a repair, or halfway through one).
   */
  #began = 0

  readonly #log: (line: Record<string, unknown>) => void
  readonly #beforeCountsLost: () => Promise<void>
  readonly #fullLookEvery: number

  constructor(
    private readonly run: Runner,
    readonly backend: Backend,
    private readonly start: ProcessStarter,
    private readonly clock: Clock,
    opts: KernelDataplaneOptions = {},
  ) {
    this.#log = opts.log ?? (() => undefined)
    this.#beforeCountsLost = opts.beforeCountsLost ?? (() => Promise.resolve())
    this.#fullLookEvery = opts.fullLookEvery ?? 1
    this.#session = new ToolSession(backend === 'nftables' ? NFT_SESSION : IPSET_SESSION, start)
    this.#shell = backend === 'nftables' ? undefined : new ToolShell(start)
    const digest = backend === 'iptables-legacy' ? filterDigestTool(process.arch) : undefined
    this.#digest = digest && new ToolSession(digest, start)
  }

  readonly #run: Runner = async (cmd, args, opts) => this.#own(await this.run(cmd, args, opts))

  /** Remembers the process that made a change: its change events are ours. */
  #own<R extends { readonly pid?: number }>(r: R): R {
    if (r.pid !== undefined) {
      this.#ownPids.add(r.pid)
      if (this.#ownPids.size > OWN_PIDS)
        this.#ownPids.delete(this.#ownPids.values().next().value as number)
    }
    return r
  }

  /**
   * The runner for applies and reads: what the session takes (see sessionFor) goes to it (what
   * it says is what the tool run once would have), anything else, what the session cannot take
   * (it died or is not in use), or a run that an abort signal may end, to a tool run for it.
   */
  readonly #viaSession: Runner = async (cmd, args, opts) => {
    if (opts?.signal === undefined && opts?.stdin === undefined && isShellListing(cmd, args))
      return this.#listed(cmd, args)
    const taken = opts?.signal ? undefined : sessionFor(cmd, args, opts?.stdin ?? '')
    if (this.#session.usable && taken?.tool === this.#session.tool) {
      try {
        return this.#own(await this.#session.run(taken.script, taken))
      } catch (e) {
        if (!(e instanceof SessionUnavailable)) throw e
        // Ended during the request, it may have made the change: its event is ours.
        this.#own(e)
        this.#log({
          msg: 'firewall tool session unavailable, running the tool once',
          reason: e.message,
        })
      }
    }
    if (opts?.signal === undefined && opts?.stdin !== undefined && isShellCommit(cmd, args))
      return this.#committed(cmd, args, opts.stdin)
    return this.#run(cmd, args, opts)
  }

  /** A commit, by the tool shell where it can (see ToolShell.commit), else by a tool run for it. */
  async #committed(cmd: string, args: readonly string[], stdin: string): Promise<RunResult> {
    const r = await this.#byShell((s) => s.commit(cmd, args, stdin))
    return r ? this.#own(r) : this.#run(cmd, args, { stdin })
  }

  /**
   * A listing, by the tool shell where it can (see ToolShell); one that failed is run
   * again as a tool of its own, which then says how it fails.
   */
  readonly #listed: Runner = async (cmd, args) =>
    (await this.#byShell((s) => s.list(cmd, args))) ?? this.#run(cmd, args)

  /** What `f` gets of the tool shell; undefined where the shell is not in use or could not answer. */
  async #byShell(f: (shell: ToolShell) => Promise<RunResult | undefined>) {
    if (!this.#shell?.usable) return undefined
    try {
      return await f(this.#shell)
    } catch (e) {
      if (!(e instanceof SessionUnavailable)) throw e
      this.#log({ msg: 'tool shell unavailable, running the tool once', reason: e.message })
      return undefined
    }
  }

  /**
   * The first read after an apply is answered by what that apply read back (verifyApplied:
   * read where it changed the kernel) instead of reading everything again, unless a change
   * by another process, or lost events, were seen in between. With `unlessChanged`, what the
   * last apply or read found answers while nothing shows a change since: a new desired state
   * one address away then costs the change, not a read of 100,000 set elements. What sends
   * change events is followed while the monitor runs (another process's change clears what is
   * known); what sends none (ipsets, iptables-legacy rules) shows at the next look, which
   * compares with the signal of the last read: that stays, so a change since it still shows.
   * After another process's change to iptables-nft filter tables alone, a read without set
   * contents lists only those tables.
   * A read without set contents right after a look that found iptables-legacy rules changed is
   * made of that look's listings. Every other read reads.
   */
  async read(opts: { elements: boolean; unlessChanged?: boolean; signal?: AbortSignal }) {
    // An apply may follow: it then finds its tool started.
    this.#session.warm()
    this.#shell?.warm()
    const last = this.#signal
    const known = this.#known
    const looked = this.#looked
    const knownBut = this.#knownBut
    this.#known = undefined
    this.#knownBut = undefined
    this.#looked = undefined
    this.#began++
    const followed = this.backend === 'iptables-legacy' || this.#watching
    const standsFor = (k: NonNullable<typeof known>) =>
      (k.applied && k.signal) ||
      (opts.unlessChanged && followed && !(opts.elements && k.rs.elementsOmitted))
    if (known && standsFor(known)) {
      if (known.applied && known.signal) this.#signal = known.signal
      this.#known = { rs: known.rs, applied: false }
      return known.rs
    }
    // What the look listed is as fresh as a listing now would be for what follows: a change
    // after it shows in the next look, which compares with its signal. Its sets' part is the
    // last read's: it was kept only if it found no change there and no read began since.
    // (After an apply, the read answers from what the apply read back, above or below.)
    if (looked && !opts.elements && !known?.applied && this.backend === 'iptables-legacy') {
      const rs = terseIptablesFrom(this.backend, looked.saves, looked.ipsetHeaders)
      this.#signal = looked.signal
      return rs
    }
    // Taken before the read, so whatever changes after it, even during the read, shows in the
    // next look. The sets' part only when their contents are read: our own applies change set
    // contents only when followed by such a read. After an apply, a change another process
    // makes between the apply's read-back and this signal goes unseen until the periodic full
    // check: a window of one listing's time.
    this.#signal = undefined
    const digest = await this.#filterDigest()
    const signal = (
      await takeLook(this.#listed, this.backend, { sets: opts.elements, digest }).catch(
        this.#logged,
      )
    )?.signal
    const foreign = this.#foreign
    const actual = known?.applied
      ? known.rs
      : knownBut && !opts.elements && this.backend === 'iptables-nft'
        ? await readIptablesChanged(
            this.#viaSession,
            this.backend,
            knownBut.rs.tables,
            knownBut.families,
          ).catch(this.#logged)
        : await readOwn(this.#viaSession, this.backend, opts).catch(this.#logged)
    // A change reported while reading may or may not show in it: the next read reads.
    if (foreign === this.#foreign) this.#known = { rs: actual, applied: false }
    this.#signal = signal && { ...signal, sets: opts.elements ? signal.sets : last?.sets }
    return actual
  }

  /**
   * A look: whether what sends no change events changed since the last read. Every
   * `fullLookEvery`th look takes the sets' headers too; the others only the filter tables
   * digest, where it runs (where it does not, they take nothing and find nothing).
   */
  async changed() {
    const last = this.#signal
    const began = this.#began
    const full = ++this.#looks % this.#fullLookEvery === 0
    // No signal (the last read failed, or none was made): a read, but not at every look.
    if (last === undefined) return full ? undefined : { rules: false, elements: false }
    const digest = await this.#filterDigest()
    if (!full && digest === undefined) return { rules: false, elements: false }
    const look = await takeLook(this.#listed, this.backend, { sets: full, digest }).catch(
      this.#logged,
    )
    if (look === undefined) return undefined
    // A read or apply began or ended while it looked: what it listed may be from before it, and
    // the signal it compares with is no longer the last. The next look compares with the new one.
    if (began !== this.#began) return { rules: false, elements: false }
    const now = look.signal
    const changed = { rules: now.rules !== last.rules, elements: full && now.sets !== last.sets }
    const [v4, v6] = look.saves
    this.#looked =
      changed.rules &&
      !changed.elements &&
      began === this.#began &&
      v4 !== undefined &&
      v6 !== undefined &&
      look.ipsetHeaders !== undefined
        ? { signal: now, saves: [v4, v6], ipsetHeaders: look.ipsetHeaders }
        : undefined
    return changed
  }

  async apply(...[desired, actual, opts]: Parameters<Dataplane['apply']>) {
    this.#duringApply = []
    try {
      return await this.#apply(desired, actual, opts)
    } finally {
      // Known again by what the apply read back: another process's change since is not.
      const held = this.#duringApply
      this.#duringApply = undefined
      for (const b of held) if (!this.isOwn(b)) this.#forget({ kind: 'change', batch: b })
    }
  }

  async #apply(...[desired, actual, opts]: Parameters<Dataplane['apply']>) {
    const last = this.#signal
    this.#known = undefined
    this.#knownBut = undefined
    this.#looked = undefined
    this.#began++
    // A full apply empties nftables' counting sets, and destroys counting ipsets no longer
    // wanted (it keeps those still wanted as they are): what they counted is read first.
    const counting =
      (findTable(actual, 'nft', 'inet', NFT_TABLE)?.counters ?? []).length > 0 ||
      (actual.ipsets.some((s) => s.counts) && !desired.ipsets.some((s) => s.counts))
    const applied = await applyDesired(this.#viaSession, desired, actual, opts, {
      ...(counting && { beforeFull: () => this.#beforeCountsLost().catch(() => undefined) }),
      ...(this.#watching && this.backend === 'iptables-nft' && { commitReported: this.#reported }),
    })
      .catch(this.#logged)
      .finally(() => {
        // A look made during the apply may have listed it halfway.
        this.#looked = undefined
        this.#began++
      })
    // Set elements alone changed: the rules are as the last signal took them, and the ipset run
    // printed the sets' headers after its changes (verifyApplied checked their counts), so the
    // signal after the apply costs no listing. A change since the last signal still shows.
    const signal =
      applied.plan.kind === 'sets' && applied.counts !== undefined && last !== undefined
        ? { rules: last.rules, sets: ourSetHeaders(applied.counts) }
        : undefined
    this.#known = { rs: applied.after, applied: true, ...(signal && { signal }) }
    return applied.plan
  }

  /**
   * Whether the monitor reports a commit by the process `pid` during this apply, within
   * COMMIT_REPORT_MS (it comes as the tool ends, a few ms at most on a host at work): the kernel's
   * word that the transaction we wrote was committed, not only the tool's.
   */
  readonly #reported = (pid: number | undefined): Promise<boolean> => {
    const held = this.#duringApply
    if (pid === undefined || held === undefined) return Promise.resolve(false)
    if (held.some((b) => b.pid === pid)) return Promise.resolve(true)
    return new Promise((resolve) => {
      const waiter = (seen: boolean) => {
        timer.cancel()
        this.#awaitingCommit.delete(waiter)
        resolve(seen)
      }
      const timer = this.clock.setTimeout(() => waiter(false), COMMIT_REPORT_MS, {
        background: true,
      })
      this.#awaitingCommit.set(waiter, pid)
    })
  }

  readonly #logged = (e: unknown): never => {
    if (e instanceof CommandError)
      this.#log({
        msg: 'firewall tool failed',
        cmd: e.cmd,
        code: e.result.code,
        stderr: e.result.stderr.slice(0, 4000),
      })
    throw e
  }

  watch(onEvent: Parameters<Dataplane['watch']>[0]) {
    // What was found while no monitor ran is not built on: a change then went unseen.
    this.#known = undefined
    this.#knownBut = undefined
    const monitor = new NftMonitor({
      start: this.start,
      now: () => this.clock.now(),
      onEvent: (e) => {
        // The flow reader's flips and flushes of the counting sets change nothing we enforce.
        if (e.kind === 'change' && onlyCountsChanged(e.batch)) return
        if (e.kind === 'change' && this.#duringApply) this.#duringApply.push(e.batch)
        else if (e.kind !== 'change' || !this.isOwn(e.batch)) this.#forget(e)
        for (const [waiter, pid] of this.#awaitingCommit)
          if (e.kind !== 'change' || e.batch.pid === pid) waiter(e.kind === 'change')
        if (e.kind === 'exited') this.#watching = false
        onEvent(e)
      },
    })
    monitor.start()
    this.#watching = true
    return {
      stop: () => {
        this.#watching = false
        monitor.stop()
      },
    }
  }

  /** Another process changed the kernel, or events were lost: what was known is not, or in part. */
  #forget(e: MonitorEvent): void {
    this.#knownBut = this.#knownAfter(e)
    this.#known = undefined
    this.#foreign++
  }

  /** What stays known after another process's change, or lost events (see #knownBut). */
  #knownAfter(e: MonitorEvent): KnownBut | undefined {
    const families =
      e.kind === 'change' && this.backend === 'iptables-nft'
        ? filterFamiliesChanged(e.batch)
        : undefined
    const rs = this.#known?.rs ?? this.#knownBut?.rs
    if (!families || !rs) return undefined
    return { rs, families: new Set([...families, ...(this.#knownBut?.families ?? [])]) }
  }

  isOwn(b: ChangeBatch): boolean {
    return b.pid !== undefined && (this.#ownPids.has(b.pid) || b.pid === this.#session.pid)
  }

  /**
   * The filter tables digest's number (see filterDigestTool), with the process that counted it:
   * one started again counts from 1 again. Undefined where it cannot tell.
   */
  async #filterDigest(): Promise<string | undefined> {
    if (!this.#digest?.usable) return undefined
    try {
      const a = await this.#digest.run('')
      const n = a.stdout.trim()
      return /^\d+$/.test(n) ? `${a.pid}:${n}` : undefined
    } catch (e) {
      if (e instanceof SessionUnavailable) return undefined
      throw e
    }
  }

  close(): void {
    this.#session.close()
    this.#shell?.close()
    this.#digest?.close()
  }
}

/** Whether a change was the flow reader's alone: flips and flushes of the counting sets. */
function onlyCountsChanged(b: ChangeBatch): boolean {
  let any = false
  for (const line of batchLines(b)) {
    if (!isFlowCountChange(line)) return false
    any = true
  }
  return any
}
