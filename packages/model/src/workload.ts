export const ENFORCEMENT_MODES = ['idle', 'visibility_only', 'selective', 'full'] as const
export type EnforcementMode = (typeof ENFORCEMENT_MODES)[number]

/** What the agent reports of traffic (Illumio's names): nothing, drops only, summaries, per connection. */
export const VISIBILITY_LEVELS = [
  'flow_off',
  'flow_drops',
  'flow_summary',
  'flow_full_detail',
] as const
export type VisibilityLevel = (typeof VISIBILITY_LEVELS)[number]

export const AGENT_TYPES = ['server', 'endpoint'] as const
export type AgentType = (typeof AGENT_TYPES)[number]

export const OS_PLATFORMS = ['linux', 'windows', 'darwin', 'solaris', 'aix'] as const
export type OsPlatform = (typeof OS_PLATFORMS)[number]

export interface WorkloadInterface {
  readonly name: string
  readonly address: string
  /** The prefix length of the interface's network, when known. */
  readonly cidrBlock?: number
}

export interface Workload {
  readonly href: string
  readonly name: string
  readonly agentType: AgentType
  readonly osPlatform: OsPlatform
  readonly enforcementMode: EnforcementMode
  /** Absent: `flow_summary`, the vendor's default. */
  readonly visibilityLevel?: VisibilityLevel
  readonly labels: readonly string[]
  readonly interfaces: readonly WorkloadInterface[]
}
