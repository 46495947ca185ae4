export const ENFORCEMENT_MODES = ['idle', 'visibility_only', 'selective', 'full'] as const
export type EnforcementMode = (typeof ENFORCEMENT_MODES)[number]

export const AGENT_TYPES = ['server', 'endpoint'] as const
export type AgentType = (typeof AGENT_TYPES)[number]

export const OS_PLATFORMS = ['linux', 'windows', 'darwin', 'solaris', 'aix'] as const
export type OsPlatform = (typeof OS_PLATFORMS)[number]

export interface WorkloadInterface {
  readonly name: string
  readonly address: string
}

export interface Workload {
  readonly href: string
  readonly name: string
  readonly agentType: AgentType
  readonly osPlatform: OsPlatform
  readonly enforcementMode: EnforcementMode
  readonly labels: readonly string[]
  readonly interfaces: readonly WorkloadInterface[]
}
