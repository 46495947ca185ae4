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
 *   A process that keeps fighting us is met with back-off and one ongoing condition.
 * - Never a busy loop: failures retry with exponential back-off, capped.
 *
 * Concurrency: one reconcile runs at a time. A trigger that arrives meanwhile marks the state
 * dirty and the loop runs once more. Change batches that arrive during our own apply are held
 * and checked once it is done (the dataplane knows its own commands), so our own changes do not
 * trigger us.
 *
 * The kernel is reached only through the Dataplane and time only through the Clock, so all of
 * this is unit-tested on an in-memory kernel and a fake clock (enforcer.test.ts).
 */
import type { Desired, Drift } from '@palisade/firewall'
import { diff, isTampering, planApply } from '@palisade/firewall'
import type { HealthState, TamperingStatus } from '@palisade/protocol'
import type { Clock, Timer } from './clock.js'
import type { ChangeBatch, Dataplane, MonitorEvent } from './dataplane.js'
import type { AgentEvent } from './events.js'
import { agentEvent } from './events.js'

export interface EnforcerOptions {
  /** The kernel: the enforcer's only way to read and write it. */
  readonly dataplane: Dataplane
  readonly clock: Clock
  /** Poll interval for what emits no events (iptables-legacy, ipsets); null: never. */
  readonly pollMs: number | null
  /** Full read-back even without events (default 30 s). */
  readonly backstopMs: number
  /** This many repairs within `windowMs` make a fight: back-off and one ongoing condition. */
  readonly fight: { readonly windowMs: number; readonly threshold: number }
  /** Follow the kernel's change events (nftables and iptables-nft emit them). */
  readonly watchEvents: boolean
  readonly onEvent: (e: AgentEvent) => void
  readonly onStatus: (s: EnforcementStatus) => void
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

type Trigger = { readonly reason: string; readonly since: number; readonly by?: ChangeBatch }

const QUIET_TO_END_MS = 60_000
const MAX_BACKOFF_MS = 30_000
const VERIFY_ATTEMPTS = 3
const MONITOR_RESTART_MS = 1000

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
  #stopped = false
  #failures = 0
  #retryTimer: Timer | undefined
  #restartTimer: Timer | undefined
  #timers: Timer[] = []
  #watch: { stop(): void } | undefined
  #heldBatches: ChangeBatch[] = []
  #repairs: number[] = []
  #episodeRepairs = 0
  #status: EnforcementStatus = { health: 'starting', tampering: { condition: 'none', repairs: 0 } }
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
      this.#timers.push(clock.setInterval(() => this.trigger('poll'), this.#o.pollMs))
    this.#timers.push(clock.setInterval(() => this.trigger('backstop'), this.#o.backstopMs))
  }

  stop(): void {
    this.#stopped = true
    this.#watch?.stop()
    for (const t of this.#timers) t.cancel()
    this.#retryTimer?.cancel()
    this.#restartTimer?.cancel()
  }

  /**
   * New desired state (a new policy version, a mode change, suspend). With `repair: false`
   * (suspended) it is applied once and then left alone: what others change is not undone.
   */
  setDesired(d: Desired, opts: { readonly repair?: boolean } = {}): void {
    this.#desired = d
    this.#repair = opts.repair ?? true
    this.trigger(`policy version ${d.version}`)
  }

  trigger(reason: string, by?: ChangeBatch): void {
    if (this.#stopped) return
    this.#dirty ??= { reason, since: by?.at ?? this.#o.clock.now(), ...(by && { by }) }
    if (!this.#running) void this.#loop()
  }

  /** Resolves once no reconcile is running or pending (for tests and benchmarks). */
  settled(): Promise<void> {
    if (!this.#running && !this.#dirty) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  #startWatch(): void {
    this.#watch = this.#o.dataplane.watch((e) => this.#onMonitor(e))
  }

  #onMonitor(e: MonitorEvent): void {
    if (e.kind === 'change') {
      if (this.#running) this.#heldBatches.push(e.batch)
      else if (!this.#isOwn(e.batch)) this.trigger('kernel change event', e.batch)
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
      while (this.#dirty && !this.#stopped) {
        const t = this.#dirty
        this.#dirty = undefined
        await this.#reconcile(t)
        const held = this.#heldBatches
        this.#heldBatches = []
        const foreign = held.find((b) => !this.#isOwn(b))
        if (foreign)
          this.#dirty ??= { reason: 'kernel change event', since: foreign.at, by: foreign }
      }
    } finally {
      this.#running = false
      for (const f of this.#idle.splice(0)) f()
    }
  }

  async #reconcile(t: Trigger): Promise<void> {
    const desired = this.#desired
    if (!desired) return
    const { clock, dataplane } = this.#o
    const started = clock.now()
    // A kernel event that touched no set element lets us skip reading set contents, which is
    // most of the cost with large sets; every other trigger reads everything.
    const elements = t.by === undefined || t.by.lines.some((l) => /\belements?\b/.test(l))
    try {
      let actual = await dataplane.read({ elements })
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
      const tampering =
        this.#verified === desired ? drifts.filter((d) => isTampering(d, desired)) : []
      if (tampering.length > 0) await this.#backOffIfFighting()
      let last: Drift[] = drifts
      let plan = 'none'
      for (let attempt = 1; attempt <= VERIFY_ATTEMPTS; attempt++) {
        plan = (
          await dataplane.apply(desired, actual, { modeChanged: modeChanged && attempt === 1 })
        ).kind
        // Verify what we wrote: set contents only need reading if we wrote them.
        actual = await dataplane.read({ elements: elements || plan !== 'rules' })
        last = diff(desired, actual)
        if (planApply(desired, last).kind === 'none') break
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
      this.#recordApplied(desired, plan, clock.now() - started)
      if (tampering.length > 0) this.#recordTampering(t, tampering, clock.now() - t.since)
    } catch (e) {
      this.#fail(e as Error, t)
    }
  }

  #recordApplied(desired: Desired, plan: string, ms: number): void {
    const { reason: _cleared, ...rest } = this.#status
    this.#setStatus({
      ...rest,
      health: 'healthy',
      applied: {
        version: desired.version,
        mode: desired.mode,
        at: this.#o.clock.isoNow(),
        plan,
        ms: +ms.toFixed(1),
      },
    })
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

  async #backOffIfFighting(): Promise<void> {
    const now = this.#o.clock.now()
    this.#repairs = this.#repairs.filter((x) => now - x < this.#o.fight.windowMs)
    const over = this.#repairs.length - this.#o.fight.threshold + 1
    if (over > 0) await this.#o.clock.sleep(Math.min(MAX_BACKOFF_MS, 250 * 2 ** (over - 1)))
  }

  #recordTampering(t: Trigger, drifts: readonly Drift[], detectToRepairMs: number): void {
    const now = this.#o.clock.now()
    this.#repairs.push(now)
    this.#episodeRepairs++
    const by = t.by?.pid !== undefined ? `${t.by.comm ?? '?'} (pid ${t.by.pid})` : undefined
    const fighting =
      this.#repairs.filter((x) => now - x < this.#o.fight.windowMs).length >=
      this.#o.fight.threshold
    const wasOngoing = this.#status.tampering.condition === 'ongoing'
    this.#setStatus({
      ...this.#status,
      tampering: {
        condition: fighting ? 'ongoing' : this.#status.tampering.condition,
        repairs: this.#status.tampering.repairs + 1,
        lastAt: this.#o.clock.isoNow(),
        ...(by && { lastBy: by }),
      },
    })
    // One event per repair until a fight starts; then one event for the whole condition.
    if (wasOngoing) return
    this.#o.onEvent(
      agentEvent(this.#o.clock, 'agent.tampering', 'warning', {
        condition: fighting ? 'ongoing' : 'repaired',
        trigger: t.reason,
        changes: drifts,
        ...(t.by && { kernel_lines: t.by.lines.slice(0, 20) }),
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

  #setStatus(s: EnforcementStatus): void {
    this.#status = s
    this.#o.onStatus(s)
  }
}
