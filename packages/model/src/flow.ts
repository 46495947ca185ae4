import type { Direction } from './host-policy.js'

/** What an agent's policy did with a connection it logged. */
export const FLOW_POLICY_DECISIONS = ['allowed', 'potentially_blocked', 'blocked'] as const

/**
 * A flow summary: one line of an agent's flow outbox, of its upload to the server, and of the
 * server's store (snake case, as on the wire).
 */
export interface FlowSummary {
  readonly direction: Direction
  readonly src_ip: string
  readonly dst_ip: string
  /** Only at `flow_full_detail`: one summary per client port. */
  readonly src_port?: number
  readonly port?: number
  readonly proto: number
  readonly icmp_type?: number
  readonly icmp_code?: number
  readonly policy_decision: (typeof FLOW_POLICY_DECISIONS)[number]
  readonly rule_href: string | null
  readonly num_connections: number
  readonly first_seen: string
  readonly last_seen: string
  /** We passed the connection on, and the kernel never confirmed it: a later rule dropped it. */
  readonly dropped_downstream: boolean
}

/** A summary on its way to the server: the uuid makes a re-sent one count once. */
export interface FlowSummaryUpload extends FlowSummary {
  readonly uuid: string
}
