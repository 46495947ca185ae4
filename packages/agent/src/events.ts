import { appendFile } from 'node:fs/promises'

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

/** Appends events to the state dir's outbox, one JSON line each; uploads read from there. */
export class EventLog {
  constructor(private readonly path: string) {}

  async record(e: AgentEvent): Promise<void> {
    await appendFile(this.path, `${JSON.stringify(e)}\n`, { mode: 0o600 })
  }
}
