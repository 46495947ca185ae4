import type { Backend } from '@palisade/firewall'
import { EMPTY_RULESET } from '@palisade/firewall'
import type { HostPolicy } from '@palisade/model'
import type { FlowsStatus, RulesetSurvey } from '@palisade/protocol'
import type { BackendChoice } from './detect.js'
import type { EnforcementStatus } from './enforcer.js'
import type { LinkState } from './server-link.js'
import { surveyRuleset } from './survey.js'

/** What `palisade agent status` shows (`status.json`); the daemon rewrites it on every change. */
export interface AgentStatus {
  readonly pid: number
  readonly state: 'running' | 'stopped'
  readonly startedAt: string
  readonly updatedAt: string
  readonly backend: Backend | 'auto'
  readonly backendReason: string
  readonly warnings: readonly string[]
  readonly os: string
  readonly survey: RulesetSurvey
  readonly policy?: {
    readonly source: string
    readonly version: number
    readonly enforcementMode: string
    readonly mode: string
  }
  readonly server?: LinkState
  readonly suspended: boolean
  readonly enforcement: EnforcementStatus
  readonly flows?: FlowsStatus
}

/** The status of an agent that cannot read its host yet, and so enforces nothing. */
export function unhealthyStatus(o: {
  readonly requested: Backend | 'auto'
  readonly os: string
  readonly reason: string
  readonly now: string
}): AgentStatus {
  return {
    pid: process.pid,
    state: 'running',
    startedAt: o.now,
    updatedAt: o.now,
    backend: o.requested,
    backendReason: 'not chosen yet',
    warnings: [],
    os: o.os,
    survey: surveyRuleset(EMPTY_RULESET),
    suspended: false,
    enforcement: {
      health: 'unhealthy',
      reason: o.reason,
      tampering: { condition: 'none', repairs: 0 },
    },
  }
}

/** The status of a running agent, from what its parts say now. */
export function runningStatus(p: {
  readonly state: AgentStatus['state']
  readonly startedAt: string
  readonly now: string
  readonly choice: BackendChoice
  readonly os: string
  readonly survey: RulesetSurvey
  readonly policy: HostPolicy | undefined
  /** Where the policy came from. */
  readonly source: string
  readonly server: LinkState | undefined
  readonly suspended: boolean
  readonly enforcement: EnforcementStatus
  readonly flows: FlowsStatus
}): AgentStatus {
  return {
    pid: process.pid,
    state: p.state,
    startedAt: p.startedAt,
    updatedAt: p.now,
    backend: p.choice.backend,
    backendReason: p.choice.reason,
    warnings: p.choice.warnings,
    os: p.os,
    survey: p.survey,
    ...(p.policy && {
      policy: {
        source: p.source,
        version: p.policy.version,
        enforcementMode: p.policy.enforcementMode,
        mode: p.policy.mode.mode,
      },
    }),
    ...(p.server && { server: p.server }),
    suspended: p.suspended,
    enforcement: p.enforcement,
    flows: p.flows,
  }
}
