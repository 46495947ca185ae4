/**
 * What an agent's report says of its health, in the vendor's terms: a workload's
 * `policy_health` and a VEN's `health`. Pure.
 */
import type { AgentHealth } from '../stores/agents.js'

interface AgentState {
  readonly status: string
  readonly health: AgentHealth
}

const suspended = (a: AgentState) => a.status === 'suspended' || a.health.suspended === true
const failing = (a: AgentState) => a.health.health === 'unhealthy'
const warned = (a: AgentState) =>
  (a.health.conditions ?? []).length > 0 ||
  (a.health.tampering as { condition?: string } | undefined)?.condition === 'ongoing'

/** `suspended`, `error` (the agent reports it cannot enforce), `warning` (conditions, tampering) or `active`. */
export function policyHealthOf(a: AgentState): 'active' | 'warning' | 'error' | 'suspended' {
  if (suspended(a)) return 'suspended'
  if (failing(a)) return 'error'
  return warned(a) ? 'warning' : 'active'
}

/** A VEN's overall health: `error` when failing, `warning` with conditions, else `healthy`. */
export function venHealthOf(a: AgentState): 'healthy' | 'warning' | 'error' {
  if (failing(a)) return 'error'
  return warned(a) ? 'warning' : 'healthy'
}
