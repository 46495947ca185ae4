import type { Direction, HostPolicy, HostRule } from './host-policy.js'
import { addressSetContains } from './ip.js'
import type { ServicePort } from './service.js'
import { servicePortMatches } from './service.js'

export const POLICY_DECISIONS = ['allowed', 'potentially_blocked', 'blocked', 'unknown'] as const
export type PolicyDecision = (typeof POLICY_DECISIONS)[number]

/** Where in our chain's evaluation order a flow was decided (spec section 2). */
export type DecisionStage =
  'idle' | 'loopback' | 'failsafe' | 'override_deny' | 'allow' | 'deny' | 'default'

/** A new connection as our chains see it, from the workload's point of view. */
export interface Flow {
  readonly direction: Direction
  /** The other end's address. */
  readonly peer: string
  readonly proto: number
  /** Destination port (for inbound: ours; for outbound: the peer's). */
  readonly port?: number
  readonly icmp?: { readonly type: number; readonly code: number }
  readonly loopback?: boolean
}

/** Traffic the agent always lets through, whatever the policy. */
export interface Failsafe {
  /** The agent's channel to the policy server (outbound). */
  readonly servers: readonly { readonly address: string; readonly port: number }[]
  /** Inbound management ports, e.g. TCP 22. */
  readonly managementPorts: readonly ServicePort[]
  /** DHCP client traffic (UDP 68 in, 67 out; DHCPv6 546/547). */
  readonly dhcpClient: boolean
}

export const DEFAULT_FAILSAFE: Failsafe = Object.freeze({
  servers: [],
  managementPorts: [{ proto: 6, port: 22 }],
  dhcpClient: true,
})

export interface Decision {
  readonly decision: PolicyDecision
  readonly stage: DecisionStage
  /** The host rule that decided, if one did. */
  readonly ruleKey?: string
}

const ruleMatches = (r: HostRule, f: Flow) =>
  r.direction === f.direction &&
  (r.peers === 'any' || addressSetContains(r.peers, f.peer)) &&
  r.services.some((sp) => servicePortMatches(sp, f.proto, f.port, f.icmp))

export function isFailsafe(fs: Failsafe, f: Flow): boolean {
  if (f.direction === 'outbound' && f.proto === 6) {
    if (fs.servers.some((s) => s.address === f.peer && s.port === f.port)) return true
  }
  if (fs.dhcpClient && f.proto === 17) {
    if (f.direction === 'outbound' && (f.port === 67 || f.port === 547)) return true
    if (f.direction === 'inbound' && (f.port === 68 || f.port === 546)) return true
  }
  return (
    f.direction === 'inbound' &&
    fs.managementPorts.some((sp) => servicePortMatches(sp, f.proto, f.port, f.icmp))
  )
}

/**
 * The policy decision for a new connection, from our policy alone (spec section 2):
 * loopback, failsafe, override-deny, allow, deny, then the enforcement mode's default.
 */
export function decide(policy: HostPolicy, failsafe: Failsafe, flow: Flow): Decision {
  const mode = policy.enforcementMode
  if (mode === 'idle') return { decision: 'unknown', stage: 'idle' }
  if (flow.loopback && !policy.loopbackInPolicy) return { decision: 'allowed', stage: 'loopback' }
  if (isFailsafe(failsafe, flow)) return { decision: 'allowed', stage: 'failsafe' }
  const enforcedBlock = mode === 'visibility_only' ? 'potentially_blocked' : 'blocked'
  for (const stage of ['override_deny', 'allow', 'deny'] as const) {
    const rule = policy.rules.find((r) => r.action === stage && ruleMatches(r, flow))
    if (!rule) continue
    return { decision: stage === 'allow' ? 'allowed' : enforcedBlock, stage, ruleKey: rule.key }
  }
  return { decision: mode === 'full' ? 'blocked' : 'potentially_blocked', stage: 'default' }
}

/** Whether the kernel drops a connection with this decision (potentially blocked passes). */
export const isEnforcedBlock = (d: PolicyDecision) => d === 'blocked'
