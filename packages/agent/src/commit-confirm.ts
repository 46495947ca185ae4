/**
 * Commit-confirm: which policy the agent enforces, and whether it may keep it.
 *
 * A policy from a server counts only once the agent reached the server again after applying it
 * (a status report naming it was delivered): a policy that cuts the agent off from its server
 * is rolled back to the last confirmed one after `confirmMs`, and refused when offered again.
 * A confirmed policy is known-good: it is saved, and enforced again after a restart before the
 * server is reached. A policy from a local file is known-good once the kernel holds it.
 */
import type { HostPolicy } from '@palisade/model'
import type { Clock, Timer } from './clock.js'

/** A policy the agent may enforce; `hash` is the server's name for it (none from a file). */
export interface Candidate {
  readonly policy: HostPolicy
  readonly hash?: string
}

/** The last confirmed policy, with the mode it was applied in (`policy.json` in the state dir). */
export interface KnownGood extends Candidate {
  readonly appliedMode?: string
}

/** Where the last verified policy stands. */
export type Confirmation =
  /** Known-good (none yet on a new agent). */
  | { readonly state: 'confirmed'; readonly good: KnownGood | undefined }
  /** Applied; unless the server is reached before the deadline, `fallback` comes back. */
  | {
      readonly state: 'awaiting'
      readonly candidate: Candidate
      readonly deadline: Timer
      readonly fallback: KnownGood | undefined
    }

export interface CommitConfirmOptions {
  readonly clock: Clock
  /** How long a server's policy may go unconfirmed; absent: the source confirms by itself. */
  readonly confirmMs?: number
  /**
   * The policy to enforce changed: compile it and hand it to the enforcer. It throws when the
   * policy cannot be compiled; that policy then does not become current.
   */
  readonly enforce: (c: Candidate) => void
  /** A new known-good policy, to keep. */
  readonly save: (good: KnownGood) => void
  /** A policy waits for confirmation: report to the server soon. */
  readonly awaiting: () => void
  /** A policy was rolled back, for this reason. */
  readonly rolledBack: (reason: string) => void
}

const idOf = (c: Candidate) => c.hash ?? c.policy.version

export class CommitConfirm {
  readonly #o: CommitConfirmOptions
  #current: Candidate | undefined
  #source = 'none yet'
  #confirmation: Confirmation = { state: 'confirmed', good: undefined }
  /** The policy the kernel last verified: what status reports name as applied. */
  #applied: Candidate | undefined
  /** A policy that was rolled back: never applied again. */
  #refused: string | undefined
  #savedId: string | number | undefined

  constructor(o: CommitConfirmOptions) {
    this.#o = o
  }

  /** After a restart: the known-good policy is current and confirmed. */
  restore(known: KnownGood | undefined): void {
    this.#confirmation = { state: 'confirmed', good: known }
    this.#savedId = known && idOf(known)
    if (!known) return
    this.#current = known
    this.#source = 'last known-good copy'
  }

  /** The policy to enforce, if any, and where it came from. */
  get current(): Candidate | undefined {
    return this.#current
  }

  get source(): string {
    return this.#source
  }

  get confirmation(): Confirmation {
    return this.#confirmation
  }

  get applied(): Candidate | undefined {
    return this.#applied
  }

  /**
   * A new policy from `source`; false when it is one that was rolled back. Throws what
   * `enforce` threw when it cannot be compiled: the current policy stays.
   */
  offer(c: Candidate, source: string): boolean {
    if (c.hash !== undefined && c.hash === this.#refused) return false
    this.#adopt(c, source)
    return true
  }

  /** The kernel holds the current policy, applied in `appliedMode`. */
  verified(appliedMode: string | undefined): void {
    const c = this.#current
    if (!c) return
    const { confirmMs } = this.#o
    if (confirmMs === undefined) return this.#confirm({ ...c, appliedMode })
    this.#applied = c
    const was = this.#confirmation
    const confirmedHash = was.state === 'confirmed' ? was.good?.hash : was.fallback?.hash
    if (
      c.hash === undefined ||
      c.hash === confirmedHash ||
      (was.state === 'awaiting' && was.candidate.hash === c.hash)
    )
      return
    if (was.state === 'awaiting') was.deadline.cancel()
    this.#confirmation = {
      state: 'awaiting',
      candidate: c,
      deadline: this.#o.clock.setTimeout(() => this.#rollback(c), confirmMs),
      fallback: was.state === 'confirmed' ? was.good : was.fallback,
    }
    this.#o.awaiting()
  }

  /** A status report naming `applied` as the applied policy reached the server. */
  reached(applied: Candidate | undefined, appliedMode: string | undefined): void {
    const was = this.#confirmation
    if (was.state !== 'awaiting' || was.candidate !== applied) return
    was.deadline.cancel()
    this.#confirm({ ...applied, appliedMode })
  }

  /** Whether a policy waits for the server (reports are retried until it is reached). */
  get awaitingConfirmation(): boolean {
    return this.#confirmation.state === 'awaiting'
  }

  stop(): void {
    if (this.#confirmation.state === 'awaiting') this.#confirmation.deadline.cancel()
  }

  #adopt(c: Candidate, source: string): void {
    this.#o.enforce(c)
    this.#current = c
    this.#source = source
  }

  #confirm(good: KnownGood): void {
    this.#confirmation = { state: 'confirmed', good }
    if (this.#savedId === idOf(good)) return
    this.#savedId = idOf(good)
    this.#o.save(good)
  }

  #rollback(c: Candidate): void {
    const was = this.#confirmation
    if (was.state !== 'awaiting' || was.candidate !== c) return
    this.#confirmation = { state: 'confirmed', good: was.fallback }
    this.#refused = c.hash
    this.#o.rolledBack(
      `could not reach the policy server within ${this.#o.confirmMs} ms after applying policy version ${c.policy.version}; rolled back to the last confirmed policy`,
    )
    if (!was.fallback) return
    try {
      this.#adopt(was.fallback, 'last confirmed policy (rolled back)')
    } catch (e) {
      // It compiled before (the failsafe may have changed since): what the kernel holds stays.
      this.#o.rolledBack(
        `the last confirmed policy (version ${was.fallback.policy.version}) cannot be compiled again, so version ${c.policy.version} stays in the kernel: ${(e as Error).message}`,
      )
    }
  }
}
