import type { Clock } from './clock.js'
import type { EnforcementStatus } from './enforcer.js'
import type { AgentEvent } from './events.js'
import { agentEvent } from './events.js'

/**
 * What a refusal concerns: a policy its source offered (refused by the schema, or not
 * compilable), or the policy already enforced, which could not be compiled again (the
 * failsafe changed, the server's name did not resolve).
 */
export type RefusalKind = 'offered' | 'enforced'

const MAX_REASON = 1000

/**
 * Policies the agent could not take: the previous ruleset stays in the kernel, the agent is
 * unhealthy for the reason, and each reason is reported in one event however often the same
 * policy is offered or compiled again.
 */
export class PolicyRefusals {
  readonly #reasons = new Map<RefusalKind, string>()

  constructor(private readonly o: { clock: Clock; onEvent: (e: AgentEvent) => void }) {}

  /** Why the agent is unhealthy, if a refusal stands. */
  get reason(): string | undefined {
    return this.#reasons.get('offered') ?? this.#reasons.get('enforced')
  }

  /** A policy was not taken, for `why`; true when this is news (an event was recorded). */
  refused(kind: RefusalKind, why: string): boolean {
    // The reason may quote what the server sent (a property name): keep events small.
    const reason = why.length > MAX_REASON ? `${why.slice(0, MAX_REASON)}...` : why
    if (this.#reasons.get(kind) === reason) return false
    this.#reasons.set(kind, reason)
    this.o.onEvent(
      agentEvent(this.o.clock, 'agent.health', 'err', {
        reason,
        policy_refused: kind,
        previous_ruleset_kept: true,
      }),
    )
    return true
  }

  /** The refusal of `kind` is over; true when there was one. */
  cleared(kind: RefusalKind): boolean {
    return this.#reasons.delete(kind)
  }

  /** The enforcer's status, unhealthy while a refusal stands. */
  health(s: EnforcementStatus): EnforcementStatus {
    const reason = this.reason
    return reason === undefined ? s : { ...s, health: 'unhealthy', reason }
  }
}
