import type { Backend, NamedSet, Ruleset } from '@palisade/firewall'
import type { Failsafe, WorkloadInterface } from '@palisade/model'
import type { FlowsStatus, RulesetSurvey, StatusReport } from '@palisade/protocol'
import type { Candidate } from './commit-confirm.js'
import type { EnforcementStatus } from './enforcer.js'

/** Past this size, large sets are sent without their elements (the server is told). */
const MAX_RULESET_BYTES = 2 * 1024 * 1024

/** The ruleset as it is sent, and its text (to tell whether the server already has it). */
function boundedRuleset(rs: Ruleset): { bounded: Ruleset; text: string } {
  const text = JSON.stringify(rs)
  if (text.length <= MAX_RULESET_BYTES) return { bounded: rs, text }
  const trim = (s: NamedSet) => (s.elements.length > 1000 ? { ...s, elements: [] } : s)
  const bounded = {
    tables: rs.tables.map((t) => ({ ...t, sets: t.sets.map(trim) })),
    ipsets: rs.ipsets.map(trim),
    elementsOmitted: true,
  }
  return { bounded, text: JSON.stringify(bounded) }
}

/** Everything a status report says, as the agent knows it now. */
export interface ReportParts {
  /** The policy the kernel last verified, if it came from the server. */
  readonly applied: Candidate | undefined
  readonly enforcement: EnforcementStatus
  readonly survey: RulesetSurvey
  readonly ruleset: Ruleset
  readonly backend: Backend
  /** The host's addresses now (undefined when they could not be read). */
  readonly interfaces: readonly WorkloadInterface[] | undefined
  readonly failsafe: Failsafe
  readonly suspended: boolean
  readonly flows: FlowsStatus
  /** Flow summaries the outbox dropped while the server was away. */
  readonly flowsDropped: number
}

/**
 * Builds status reports. The ruleset and the addresses go out only when they differ from what
 * the server last stored; a ruleset is serialised once per read of the host, not per report.
 */
export class StatusReports {
  #rulesetSent: string | undefined
  #interfacesSent: string | undefined
  #ruleset: { of: Ruleset; bounded: Ruleset; text: string } | undefined

  /** The report, and what to remember once the server stored it. */
  build(p: ReportParts): { body: StatusReport; sent: () => void } {
    if (this.#ruleset?.of !== p.ruleset)
      this.#ruleset = { of: p.ruleset, ...boundedRuleset(p.ruleset) }
    const { bounded, text: rulesetText } = this.#ruleset
    const interfacesText = p.interfaces && JSON.stringify(p.interfaces)
    const a = p.applied
    const body: StatusReport = {
      ...(a?.hash &&
        p.enforcement.applied && {
          applied: { version: a.policy.version, hash: a.hash, mode: p.enforcement.applied.mode },
        }),
      health: {
        health: p.enforcement.health,
        reason: p.enforcement.reason ?? null,
        tampering: p.enforcement.tampering,
        suspended: p.suspended,
        flows: { ...p.flows, dropped: p.flowsDropped },
        // What our chains always let through, for the server's explanations.
        failsafe: p.failsafe,
      },
      survey: p.survey,
      backend: p.backend,
      ...(p.interfaces && interfacesText !== this.#interfacesSent && { interfaces: p.interfaces }),
      ...(rulesetText !== this.#rulesetSent && { ruleset: bounded }),
    }
    return {
      body,
      sent: () => {
        if (body.ruleset) this.#rulesetSent = rulesetText
        if (body.interfaces) this.#interfacesSent = interfacesText
      },
    }
  }
}
