import type { AgentEvent, AgentEventType, EventSeverity } from '@palisade/protocol'
import { randomUUID } from 'node:crypto'
import type { Clock } from './clock.js'

export type { AgentEvent } from '@palisade/protocol'

/** A new event, stamped now: recorded locally and uploaded to the server (`/orgs/{org}/events`). */
export function agentEvent(
  clock: Clock,
  type: AgentEventType,
  severity: EventSeverity,
  details: Record<string, unknown>,
): AgentEvent {
  return { event_type: type, severity, timestamp: clock.isoNow(), uuid: randomUUID(), details }
}
