/**
 * The closed lists both ends of the agent channel check against, each defined once: those the
 * rest of the system already has are re-exported from where they live.
 */
export type { Backend } from '@palisade/firewall'
export { BACKENDS } from '@palisade/firewall'
export type { EventSeverity, OsPlatform } from '@palisade/model'
export { EVENT_SEVERITIES, FLOW_POLICY_DECISIONS, OS_PLATFORMS } from '@palisade/model'

/** What an unpaired agent leaves behind (see `palisade agent unpair`). */
export const RESTORE_MODES = ['default', 'saved', 'open', 'closed'] as const
export type RestoreMode = (typeof RESTORE_MODES)[number]

/** The events an agent reports. */
export const AGENT_EVENT_TYPES = [
  'agent.tampering',
  'agent.firewall_apply_failed',
  'agent.health',
  'agent.suspend',
  'agent.unsuspend',
  'agent.goodbye',
  'agent.upgrade',
  'agent.upgrade_failed',
] as const
export type AgentEventType = (typeof AGENT_EVENT_TYPES)[number]

/** The one-file agent's builds: Linux on these architectures. */
export const AGENT_ARCHES = ['x64', 'arm64'] as const
export type AgentArch = (typeof AGENT_ARCHES)[number]

/** Whether an agent enforces its policy. */
export const HEALTH_STATES = ['starting', 'healthy', 'unhealthy'] as const
export type HealthState = (typeof HEALTH_STATES)[number]
