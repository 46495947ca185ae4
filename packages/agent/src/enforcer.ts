/**
 * The enforcer keeps the kernel equal to the desired state, and says so.
 *
 * Goals
 * - Level-triggered: every trigger (new policy, a kernel change event, a lost-events notice,
 *   a poll tick, the backstop timer) leads to the same thing: read our objects back, diff them
 *   against the desired state, and apply the plan. Events are hints, never the state.
 * - Atomic: each apply is one transaction per table (see Dataplane.apply), so a crash or a
 *   failure leaves the old or the new ruleset, never a mix within a table.
 * - Verified: after applying we read back again; only an empty diff counts as applied.
 * - Honest about tampering: a drift found after we verified the same desired state is
 *   tampering. It is repaired and reported once per episode, with the process the kernel named.
 * - A fight never costs protection: a process that keeps changing our rules is undone at once,
 *   every time, and is one ongoing condition (an event when it starts and when it ends, the
 *   count in the status). What a fight may cost us is bounded instead: repairs in a fight rest
 *   between them (FIGHT_REST_MS, or as long as the last one took), so they keep at most half
 *   of one CPU busy, the status is published at most once per FIGHT_STATUS_MS, and
 *   polling closer (without set contents unless they were the target) only where polling found
 *   the change.
 * - Never a busy loop: failures retry with exponential back-off, capped.
 *
 * Concurrency: one reconcile runs at a time. A trigger that arrives meanwhile marks the state
 * dirty and the loop runs once more. Change batches that arrive during our own apply are held
 * and checked once it is done (the dataplane knows its own commands), so our own changes do not
 * trigger us.
 *
 * A repair never waits for a read of set contents: with 100,000 peers that read takes seconds,
 * and the periodic full check (the backstop) makes one every 30 s. A change by another process
 * that touches no set element, seen while such a read runs for a state already verified, ends
 * that read; the change is repaired from a read without set contents, and the read of contents
 * is made again after it. Drift in set contents that sends no event is still found: a read of
 * contents gives way only while the last complete one is younger than two backstop periods, so
 * such drift is found within two backstop periods and one read (60 s and a few by default),
 * even against a process that changes our rules without pause.
 *
 * The kernel is reached only through the Dataplane and time only through the Clock, so all of
 * this is unit-tested on an in-memory kernel and a fake clock (enforcer.test.ts).
 */
import type { Desired, Drift, Ruleset } from '@palisade/firewall'
import { diff, isTampering, planApply } from '@palisade/firewall'
import type { HealthState, TamperingStatus } from '@palisade/protocol'
import type { Clock, Timer } from './clock.js'
import type { ChangeBatch, Dataplane, MonitorEvent } from './dataplane.js'
import { batchLines } from './dataplane.js'
import type { AgentEvent } from './events.js'
import { agentEvent } from './events.js'

export interface EnforcerOptions {
  /** The kernel: the enforcer's only way to read and write it. */
  readonly dataplane: Dataplane
  readonly clock: Clock
  /** Poll interval for what emits no events (iptables-legacy, ipsets); null: never. */
  readonly pollMs: number | null
  /**
   * How often a poll looks, where that is more often than `pollMs` (the dataplane takes what
   * costs a tool only every so many looks: see KernelDataplane's `fullLookEvery`).
   */
  readonly lookMs?: number
  /** Full read-back even without events (default 30 s); see also the class comment. */
  readonly backstopMs: number
  /** This many repairs within `windowMs` make a fight: one ongoing condition, paced repairs. */
  readonly fight: { readonly windowMs: number; readonly threshold: number }
  /** Follow the kernel's change events (nftables and iptables-nft emit them). */
  readonly watchEvents: boolean
  readonly onEvent: (e: AgentEvent) => void
  readonly onStatus: (s: EnforcementStatus) => void
  /**
   * Awaited before each look at the kernel: what must run before our rules change to
   * `desired` (the state this look is for; it may be the one already verified).
   */
  readonly beforeReconcile?: (desired: Desired | undefined) => Promise<void>
}

export interface EnforcementStatus {
  readonly health: HealthState
  readonly reason?: string
  readonly applied?: {
    readonly version: number
    readonly mode: string
    readonly at: string
    readonly plan: string
    readonly ms: number
  }
  readonly tampering: TamperingStatus
}

type Trigger = {
  readonly reason: string
  readonly since: number
  readonly by?: ChangeBatch
  /** Whether set contents must be read (most of the cost with large sets). */
  readonly elements: boolean
  /**
   * Whether the kernel may have changed, so must be read: every trigger but a new desired
   * state, for which what the dataplane last read or applied stands while nothing shows a change.
   */
  readonly fresh: boolean
}

const QUIET_TO_END_MS = 60_000
const MAX_BACKOFF_MS = 30_000
const VERIFY_ATTEMPTS = 3
const MONITOR_RESTART_MS = 1000
/**
 * In a fight, the least rest between the end of one repair and the start of the next (longer if
 * the repair took longer). It bounds the CPU a process changing our rules in a tight loop can
 * make us spend, and costs nothing against a slower one; our rules are then missing for at most
 * the rest plus one read and one apply.
 */
const FIGHT_REST_MS = 100
/** In a fight, what changes each round (counts, times) is published at most this often. */
const FIGHT_STATUS_MS = 1000
/**
 * After polling found tampering, our rules are polled this often until a quiet minute, so a
 * fight on what emits no events (iptables-legacy, ipsets) is undone within this, not the poll.
 */
const CLOSE_POLL_MS = 250

export class Enforcer {
  readonly #o: EnforcerOptions
  #desired: Desired | undefined
  /** Whether drift from a verified desired state is repaired (not while suspended). */
  #repair = true
  #appliedMode: string | undefined
  /** The desired state we last verified in the kernel: drift from it is tampering. */
  #verified: Desired | undefined
  #dirty: Trigger | undefined
  #running = false
  #looking = false
  /** A poll tick came while a reconcile was reading or applying: look once it is done. */
  #lookWhenDone = false
  #stopped = false
  #failures = 0
  #retryTimer: Timer | undefined
  #restartTimer: Timer | undefined
  #timers: Timer[] = []
  #watch: { stop(): void } | undefined
  #heldBatches: ChangeBatch[] = []
  /** A read of set contents that gives way to a change event, while it runs. */
  #yielding: AbortController | undefined
  /** A reconcile whose read of set contents gave way: it runs once nothing else is pending. */
  #contentsDue: Trigger | undefined
  /** When the last complete read with set contents began. */
  #contentsReadAt: number | undefined
  #repairs: number[] = []
  #episodeRepairs = 0
  /** When the last apply for a verified state ended, how long it took, whether we rest now. */
  #lastRepair: { end: number; took: number } | undefined
  #resting = false
  /** Polling closer after tampering found by polling: until when, and for set contents too. */
  #closePoll: { timer: Timer; until: number; elements: boolean } | undefined
  #status: EnforcementStatus = { health: 'starting', tampering: { condition: 'none', repairs: 0 } }
  /** When the status was last handed to onStatus, and a publication waiting in a fight. */
  #publishedAt: number | undefined
  #publishTimer: Timer | undefined
  #idle: Array<() => void> = []

  constructor(opts: EnforcerOptions) {
    this.#o = Object.freeze({ ...opts })
  }

  get status(): EnforcementStatus {
    return this.#status
  }

  /** The desired state last verified in the kernel (the object passed to setDesired). */
  get verified(): Desired | undefined {
    return this.#verified
  }

  /** Starts watching; `appliedMode` is the mode of the last apply before a restart, if any. */
  start(appliedMode?: string): void {
    this.#appliedMode = appliedMode
    const { clock } = this.#o
    if (this.#o.watchEvents) this.#startWatch()
    if (this.#o.pollMs !== null)
      this.#timers.push(
        clock.setInterval(() => void this.#poll(), this.#o.lookMs ?? this.#o.pollMs),
      )
    this.#timers.push(clock.setInterval(() => this.trigger('backstop'), this.#o.backstopMs))
  }

  stop(): void {
    this.#stopped = true
    this.#watch?.stop()
    this.#o.dataplane.close()
    for (const t of this.#timers) t.cancel()
    this.#retryTimer?.cancel()
    this.#restartTimer?.cancel()
    this.#closePoll?.timer.cancel()
    this.#publishTimer?.cancel()
  }

  /**
   * New desired state (a new policy version, a mode change, suspend). With `repair: false`
   * (suspended) it is applied once and then left alone: what others change is not undone.
   */
  setDesired(d: Desired, opts: { readonly repair?: boolean } = {}): void {
    this.#desired = d
    this.#repair = opts.repair ?? true
    const reason = `policy version ${d.version}`
    this.#mark({ reason, since: this.#o.clock.now(), elements: true, fresh: false })
  }

  trigger(reason: string, by?: ChangeBatch, elements?: boolean): void {
    // A kernel event that touched no set element lets us skip reading set contents; every
    // other trigger reads everything unless told otherwise.
    this.#mark({
      reason,
      since: by?.at ?? this.#o.clock.now(),
      ...(by && { by }),
      elements: elements ?? (by === undefined || touchesElements(by)),
      fresh: true,
    })
  }

  #mark(next: Trigger): void {
    if (this.#stopped) return
    // Triggers that meet are one reconcile: the first names it, any one can ask for contents
    // or for a fresh read.
    const d = this.#dirty
    this.#dirty = d
      ? { ...d, elements: d.elements || next.elements, fresh: d.fresh || next.fresh }
      : next
    if (!this.#running) void this.#loop()
  }

  /** Resolves once no reconcile is running or pending (for tests and benchmarks). */
  settled(): Promise<void> {
    if (!this.#running && !this.#dirty) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /**
   * A poll tick: a cheap look for changes since the last read where the dataplane has one, and
   * a read only if it found some (or cannot tell). Put off while a reconcile reads and applies:
   * its last read is the one a look compares with.
   */
  async #poll(): Promise<void> {
    if (this.#looking) return
    if (this.#running && !this.#resting) {
      this.#lookWhenDone = true
      return
    }
    this.#looking = true
    try {
      const c = await this.#o.dataplane.changed().catch(() => undefined)
      if (c === undefined) this.trigger('poll')
      else if (c.rules || c.elements) this.trigger('poll', undefined, c.elements)
    } finally {
      this.#looking = false
    }
  }

  #startWatch(): void {
    this.#watch = this.#o.dataplane.watch((e) => this.#onMonitor(e))
  }

  #onMonitor(e: MonitorEvent): void {
    if (e.kind === 'change') {
      // During a reconcile our own commands may not be known yet: hold until it is done.
      if (this.#running && !this.#resting) {
        this.#heldBatches.push(e.batch)
        // A read of contents before any apply of ours: the change is another process's.
        if (this.#yielding && !this.#isOwn(e.batch) && !touchesElements(e.batch))
          this.#yielding.abort()
      } else if (!this.#isOwn(e.batch)) this.trigger('kernel change event', e.batch)
      return
    }
    if (e.kind === 'lost') {
      this.trigger('kernel change events were lost')
      return
    }
    if (this.#stopped) return
    this.#setStatus({ ...this.#status, reason: e.reason })
    // The monitor is only a hint source: restart it later and re-read in the meantime.
    this.#restartTimer = this.#o.clock.setTimeout(
      () => {
        if (this.#stopped) return
        this.#startWatch()
        this.trigger('change monitor restarted')
      },
      MONITOR_RESTART_MS,
      { background: true },
    )
  }

  #isOwn(b: ChangeBatch): boolean {
    return this.#o.dataplane.isOwn(b)
  }

  async #loop(): Promise<void> {
    this.#running = true
    try {
      for (;;) {
        // A read of contents that gave way comes after what took its place.
        if (!this.#dirty && this.#contentsDue) {
          this.#dirty = this.#contentsDue
          this.#contentsDue = undefined
        }
        if (!this.#dirty || this.#stopped) break
        await this.#restInFight()
        const t = this.#dirty
        this.#dirty = undefined
        if (this.#stopped) break
        await this.#reconcile(t)
        const held = this.#heldBatches
        this.#heldBatches = []
        for (const b of held) if (!this.#isOwn(b)) this.trigger('kernel change event', b)
      }
    } finally {
      this.#running = false
      if (this.#lookWhenDone && !this.#stopped) {
        this.#lookWhenDone = false
        void this.#poll()
      }
      for (const f of this.#idle.splice(0)) f()
    }
  }

  async #reconcile(t: Trigger): Promise<void> {
    await this.#o.beforeReconcile?.(this.#desired).catch(() => undefined)
    const desired = this.#desired
    if (!desired || this.#stopped) return
    const { clock, dataplane } = this.#o
    const started = clock.now()
    const { elements } = t
    let repairing = false
    try {
      const read = await this.#readFirst(t, desired)
      if (read === undefined) return
      let actual = read
      const modeChanged = this.#appliedMode !== undefined && this.#appliedMode !== desired.mode
      const drifts = diff(desired, actual)
      if (!modeChanged && planApply(desired, drifts).kind === 'none') {
        const newlyVerified = this.#verified !== desired
        this.#verified = desired
        this.#appliedMode = desired.mode
        if (newlyVerified) this.#setStatus(this.#status)
        // A new version can compile to what the kernel already holds: it is applied all the same.
        if (this.#status.applied?.version !== desired.version)
          this.#recordApplied(desired, 'none', clock.now() - started)
        this.#healthy()
        this.#maybeEndEpisode()
        return
      }
      // Suspended: once applied, the kernel is left to others.
      if (this.#verified === desired && !this.#repair) return
      // Tampering is undone now, whatever the fight: back-off may cost events, never protection.
      const tampering =
        this.#verified === desired ? drifts.filter((d) => isTampering(d, desired)) : []
      repairing = tampering.length > 0
      let last: Drift[] = drifts
      let plan = 'none'
      for (let attempt = 1; attempt <= VERIFY_ATTEMPTS; attempt++) {
        const applying = clock.now()
        plan = (
          await dataplane.apply(desired, actual, { modeChanged: modeChanged && attempt === 1 })
        ).kind
        // Verify what we wrote: set contents only need reading if we wrote them.
        actual = await dataplane.read({ elements: elements || plan !== 'rules' })
        last = diff(desired, actual)
        if (planApply(desired, last).kind === 'none') break
        // Changed again by another process since our apply (a fight): our apply held until
        // then, so this repair is done; the next round, for that change, undoes it again.
        if (tampering.length > 0 && this.#foreignSince(applying)) {
          this.#recordTampering(t, tampering, clock.now() - t.since)
          return
        }
      }
      if (planApply(desired, last).kind !== 'none') {
        throw new Error(
          `the kernel still differs after ${VERIFY_ATTEMPTS} applies: ${last
            .slice(0, 3)
            .map((d) => d.kind)
            .join(', ')}`,
        )
      }
      this.#verified = desired
      this.#appliedMode = desired.mode
      this.#failures = 0
      // A repair in a fight that changes nothing but counts and times is routine.
      const was = this.#status
      const routine =
        tampering.length > 0 &&
        was.tampering.condition === 'ongoing' &&
        was.health === 'healthy' &&
        !was.reason
      this.#recordApplied(desired, plan, clock.now() - started, { routine })
      if (tampering.length > 0) this.#recordTampering(t, tampering, clock.now() - t.since)
    } catch (e) {
      this.#fail(e as Error, t)
    } finally {
      // Repaired, undone again or failed: in a fight, the next one rests after this.
      if (repairing) this.#lastRepair = { end: clock.now(), took: clock.now() - started }
    }
  }

  /**
   * The reconcile's first read; undefined if it was a read of set contents that gave way to a
   * change event (see the class comment): it is then due again, after the change's repair.
   */
  async #readFirst(t: Trigger, desired: Desired): Promise<Ruleset | undefined> {
    const { clock, dataplane, backstopMs } = this.#o
    const started = clock.now()
    // A new desired state may start from what is known, while nothing shows a change since.
    const unlessChanged = !t.fresh
    if (!t.elements) return dataplane.read({ elements: false, unlessChanged })
    const last = this.#contentsReadAt
    const mayYield =
      this.#verified === desired &&
      this.#repair &&
      last !== undefined &&
      started - last < 2 * backstopMs
    const yielding = mayYield ? new AbortController() : undefined
    this.#yielding = yielding
    try {
      const actual = await dataplane.read({
        elements: true,
        unlessChanged,
        ...(yielding && { signal: yielding.signal }),
      })
      if (!yielding?.signal.aborted) {
        this.#contentsReadAt = started
        this.#contentsDue = undefined
        return actual
      }
    } catch (e) {
      if (!yielding?.signal.aborted) throw e
    } finally {
      this.#yielding = undefined
    }
    this.#contentsDue = this.#contentsDue
      ? { ...this.#contentsDue, elements: true, fresh: true }
      : { ...t, elements: true, fresh: true }
    return undefined
  }

  #recordApplied(
    desired: Desired,
    plan: string,
    ms: number,
    opts: { readonly routine?: boolean } = {},
  ): void {
    const { reason: _cleared, ...rest } = this.#status
    this.#setStatus(
      {
        ...rest,
        health: 'healthy',
        applied: {
          version: desired.version,
          mode: desired.mode,
          at: this.#o.clock.isoNow(),
          plan,
          ms: +ms.toFixed(1),
        },
      },
      opts,
    )
  }

  #healthy(): void {
    if (this.#status.health !== 'healthy' || this.#status.reason) {
      const { reason: _gone, ...rest } = this.#status
      this.#setStatus({ ...rest, health: 'healthy' })
    }
    this.#failures = 0
  }

  #fail(e: Error, t: Trigger): void {
    this.#failures++
    const reason = `enforcing policy failed: ${e.message}`
    // One event per distinct failure; retries of the same failure only update the status.
    if (this.#status.health !== 'unhealthy' || this.#status.reason !== reason) {
      this.#o.onEvent(
        agentEvent(this.#o.clock, 'agent.firewall_apply_failed', 'err', {
          reason,
          trigger: t.reason,
        }),
      )
    }
    this.#setStatus({ ...this.#status, health: 'unhealthy', reason })
    // The old ruleset stays in place (each transaction is atomic); retry later, backing off.
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.#failures, 10))
    this.#retryTimer?.cancel()
    this.#retryTimer = this.#o.clock.setTimeout(
      () => this.trigger(`retry after failure #${this.#failures}`),
      delay,
      { background: true },
    )
  }

  /** Whether another process changed the kernel since `at` (seen in the held change events). */
  #foreignSince(at: number): boolean {
    return this.#heldBatches.some((b) => b.at >= at && !this.#isOwn(b))
  }

  /** In a fight, the next reconcile rests after the last repair as long as that took, or more. */
  async #restInFight(): Promise<void> {
    const last = this.#lastRepair
    if (this.#status.tampering.condition !== 'ongoing' || last === undefined) return
    const wait = last.end + Math.max(FIGHT_REST_MS, last.took) - this.#o.clock.now()
    if (wait <= 0) return
    // Nothing of ours runs meanwhile: change events are taken as they come.
    this.#resting = true
    try {
      await this.#o.clock.sleep(wait)
    } finally {
      this.#resting = false
    }
  }

  /** Tampering found without a change event, where we poll: poll closer for a while. */
  #pollCloser(t: Trigger, drifts: readonly Drift[]): void {
    const { clock, pollMs } = this.#o
    if (t.by !== undefined || pollMs === null || pollMs <= CLOSE_POLL_MS) return
    const until = clock.now() + QUIET_TO_END_MS
    const elements = drifts.some((d) => d.kind === 'set_elements')
    if (this.#closePoll) {
      this.#closePoll.until = until
      this.#closePoll.elements ||= elements
      return
    }
    const timer = clock.setInterval(() => {
      const p = this.#closePoll
      if (!p) return
      if (clock.now() < p.until) this.trigger('close poll', undefined, p.elements)
      else {
        p.timer.cancel()
        this.#closePoll = undefined
      }
    }, CLOSE_POLL_MS)
    this.#closePoll = { timer, until, elements }
  }

  #recordTampering(t: Trigger, drifts: readonly Drift[], detectToRepairMs: number): void {
    const now = this.#o.clock.now()
    this.#repairs = this.#repairs.filter((x) => now - x < this.#o.fight.windowMs)
    this.#repairs.push(now)
    this.#episodeRepairs++
    this.#pollCloser(t, drifts)
    const by = t.by?.pid !== undefined ? `${t.by.comm ?? '?'} (pid ${t.by.pid})` : undefined
    const fighting = this.#repairs.length >= this.#o.fight.threshold
    const wasOngoing = this.#status.tampering.condition === 'ongoing'
    this.#setStatus(
      {
        ...this.#status,
        tampering: {
          condition: fighting ? 'ongoing' : this.#status.tampering.condition,
          repairs: this.#status.tampering.repairs + 1,
          lastAt: this.#o.clock.isoNow(),
          ...(by && { lastBy: by }),
        },
      },
      { routine: wasOngoing },
    )
    // One event per repair until a fight starts; then one event for the whole condition.
    if (wasOngoing) return
    this.#o.onEvent(
      agentEvent(this.#o.clock, 'agent.tampering', 'warning', {
        condition: fighting ? 'ongoing' : 'repaired',
        trigger: t.reason,
        changes: drifts,
        ...(t.by && { kernel_lines: firstLines(t.by, 20) }),
        ...(by && { process: { pid: t.by?.pid, comm: t.by?.comm } }),
        repaired: true,
        detect_to_repair_ms: +detectToRepairMs.toFixed(1),
        ...(fighting && { repairs_in_window: this.#repairs.length }),
      }),
    )
  }

  #maybeEndEpisode(): void {
    const last = this.#repairs[this.#repairs.length - 1]
    if (this.#status.tampering.condition !== 'ongoing' || last === undefined) return
    if (this.#o.clock.now() - last < QUIET_TO_END_MS) return
    this.#o.onEvent(
      agentEvent(this.#o.clock, 'agent.tampering', 'info', {
        condition: 'ended',
        repairs: this.#episodeRepairs,
      }),
    )
    this.#episodeRepairs = 0
    this.#setStatus({
      ...this.#status,
      tampering: { ...this.#status.tampering, condition: 'none' },
    })
  }

  /**
   * `routine`: only what every round of a fight changes (counts, times), published at most once
   * per FIGHT_STATUS_MS; anything else is published at once, with whatever was waiting.
   */
  #setStatus(s: EnforcementStatus, opts: { readonly routine?: boolean } = {}): void {
    this.#status = s
    const { clock } = this.#o
    const last = this.#publishedAt
    if (!opts.routine || last === undefined || clock.now() - last >= FIGHT_STATUS_MS) {
      this.#publish()
      return
    }
    this.#publishTimer ??= clock.setTimeout(
      () => this.#publish(),
      last + FIGHT_STATUS_MS - clock.now(),
      { background: true },
    )
  }

  #publish(): void {
    this.#publishTimer?.cancel()
    this.#publishTimer = undefined
    this.#publishedAt = this.#o.clock.now()
    this.#o.onStatus(this.#status)
  }
}

/** Whether a kernel change touched set elements (then a read of set contents is needed). */
const touchesElements = (b: ChangeBatch): boolean => /\belements?\b/.test(b.text)

/** The first `n` lines of a change, as a tamper event quotes them. */
function firstLines(b: ChangeBatch, n: number): string[] {
  const lines: string[] = []
  for (const line of batchLines(b)) if (lines.push(line) >= n) break
  return lines
}
