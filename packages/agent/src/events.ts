/** An event the agent records locally and uploads to the server (`/orgs/{org}/events`). */
export interface AgentEvent {
  readonly event_type:
    | 'agent.tampering'
    | 'agent.firewall_apply_failed'
    | 'agent.health'
    | 'agent.suspend'
    | 'agent.unsuspend'
    | 'agent.goodbye'
  readonly severity: 'info' | 'warning' | 'err'
  readonly timestamp: string
  readonly uuid: string
  readonly details: Record<string, unknown>
}
