import type { Candidate, CommitConfirm } from './commit-confirm.js'
import type { PolicyRefusals, RefusalKind } from './policy-refusals.js'

export interface PolicyIntakeOptions {
  readonly commit: CommitConfirm
  readonly refusals: PolicyRefusals
  /** Compiles a policy and hands it to the enforcer; throws if it cannot be compiled. */
  readonly enforce: (c: Candidate) => void
  readonly log: (line: Record<string, unknown>) => void
  /** The agent's health changed: write the status file, and report to the server if `report`. */
  readonly changed: (report: boolean) => void
}

/**
 * Policies offered to the agent, taken or refused: a policy that does not compile leaves the
 * previous ruleset in place and makes the agent unhealthy until a policy is taken; it is kept
 * to be offered again when what it needs changes (the server's name resolved).
 */
export class PolicyIntake {
  readonly #o: PolicyIntakeOptions
  /** A policy that did not compile: offered again when the failsafe changes. */
  #untaken: { readonly c: Candidate; readonly source: string } | undefined

  constructor(o: PolicyIntakeOptions) {
    this.#o = o
  }

  /**
   * A policy offered by its source becomes current once it compiled (commit-confirm then
   * waits for the kernel and the server).
   */
  take(c: Candidate, source: string): void {
    const { commit, refusals } = this.#o
    try {
      if (commit.offer(c, source)) {
        this.#untaken = undefined
        refusals.cleared('offered')
        refusals.cleared('enforced')
      }
    } catch (e) {
      this.#untaken = { c, source }
      this.refused(
        'offered',
        `policy version ${c.policy.version} from ${source} was not applied, the previous ruleset stays: ${(e as Error).message}`,
      )
    }
    this.#o.changed(true)
  }

  /** The server's policy is the one enforced after all: a refusal of another one is over. */
  unchanged(hash: string | undefined): void {
    if (hash === undefined || hash !== this.#o.commit.current?.hash) return
    this.#untaken = undefined
    if (this.#o.refusals.cleared('offered')) this.#o.changed(true)
  }

  refused(kind: RefusalKind, reason: string): void {
    this.#o.log({ msg: 'policy refused', reason })
    if (this.#o.refusals.refused(kind, reason)) this.#o.changed(true)
  }

  /** Enforces the current policy again (suspend, a new failsafe); what cannot compile is refused. */
  enforceCurrent(): void {
    const c = this.#o.commit.current
    if (!c) return
    try {
      this.#o.enforce(c)
      if (this.#o.refusals.cleared('enforced')) this.#o.changed(false)
    } catch (e) {
      this.refused(
        'enforced',
        `policy version ${c.policy.version} cannot be compiled, the previous ruleset stays: ${(e as Error).message}`,
      )
    }
  }

  /** The failsafe changed (the server's addresses): a policy refused for it may compile now. */
  failsafeChanged(): void {
    const untaken = this.#untaken
    if (untaken) this.take(untaken.c, untaken.source)
    else this.enforceCurrent()
  }
}
