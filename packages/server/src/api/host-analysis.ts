import type { Backend, Packet } from '@palisade/firewall'
import {
  analyseImpact,
  BACKENDS,
  loggedDecisions,
  protoNumber,
  tracePacket,
} from '@palisade/firewall'
import type { CoexistenceMode } from '@palisade/model'
import { addrToBigInt, decide, DEFAULT_FAILSAFE } from '@palisade/model'
import type { FastifyInstance } from 'fastify'
import type { AppContext } from '../context.js'
import { invalidOne } from '../errors.js'
import { workloadHref } from '../hrefs.js'
import { json, orgOf } from '../http.js'
import { agentOfWorkload } from '../stores/agents.js'
import { currentPolicy } from '../stores/host-policies.js'
import { Checker } from '../validate.js'
import { workloadOf } from '../workloads/workload-writes.js'

/** Palisade's additions to the workload API: what the other firewalls on a host do to ours. */

const MEANING = {
  bypass: 'a foreign accept before our chains lets through traffic our policy would block',
  override: 'a foreign drop after our chains blocks traffic our policy allows',
  'pre-empt': 'a foreign drop before our chains hides this traffic from us: we never see it',
  shadowed: 'a foreign rule after our final verdict is never reached',
} as const

/** The packet `explain` asks about (addresses, protocol, ports), checked; 406 when malformed. */
function explainQuery(q: Record<string, unknown>) {
  const c = new Checker()
  const ip = (key: string) => {
    const v = c.string(q, key, '$', { required: true, max: 64 })
    if (v === undefined) return undefined
    try {
      return { text: v, family: addrToBigInt(v).family }
    } catch {
      return c.fail(`$.${key}`, `"${v}" is not an IP address`)
    }
  }
  const src = ip('src')
  const dst = ip('dst')
  const protoText = c.string(q, 'proto', '$', { max: 16 }) ?? 'tcp'
  const proto = protoNumber(protoText)
  if (proto === undefined) c.fail('$.proto', `"${protoText}" is not a protocol name or number`)
  const portOf = (key: string) => {
    const v = q[key]
    if (v === undefined) return undefined
    const n = Number(v)
    return Number.isInteger(n) && n >= 0 && n <= 65535
      ? n
      : c.fail(`$.${key}`, 'must be a port from 0 to 65535')
  }
  const port = portOf('port')
  const sport = portOf('sport') ?? 40_000
  if (src && dst && src.family !== dst.family)
    c.fail('$.dst', 'must be the same address family as src')
  c.done()
  if (!src || !dst || proto === undefined) return undefined
  return { src, dst, proto, port, sport }
}

export function registerHostAnalysis(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const hostOf = async (org: number, id: string) => {
    const w = await workloadOf(db, org, id)
    const agent = await agentOfWorkload(db, id)
    if (!agent)
      throw invalidOne(
        'workload_unmanaged',
        `${workloadHref(org, id)} has no agent: only a managed workload reports its firewalls`,
      )
    const backend = BACKENDS.includes(agent.backend as Backend)
      ? (agent.backend as Backend)
      : undefined
    const ruleset = agent.ruleset ?? undefined
    return { w, agent, backend, ruleset, failsafe: agent.health.failsafe ?? DEFAULT_FAILSAFE }
  }

  /** The foreign firewalls the last survey found, and which traffic they bypass, override or pre-empt. */
  api.get('/orgs/:org/workloads/:id/coexistence_impact', async (req, reply) => {
    const org = orgOf(req)
    const { w, agent, backend, ruleset } = await hostOf(org, (req.params as { id: string }).id)
    const { survey } = agent
    const mode = (agent.applied_mode ?? 'exclusive') as CoexistenceMode
    const impacts =
      ruleset && backend
        ? analyseImpact(ruleset, { backend, mode }).map((i) => ({
            kind: i.kind,
            meaning: MEANING[i.kind],
            hook: i.hook,
            family: `ipv${i.family}`,
            verdict: i.verdict,
            traffic: i.traffic,
            rule: {
              table: i.rule.table,
              chain: i.rule.chain,
              index: i.rule.index,
              text: i.rule.text,
            },
          }))
        : []
    return json(reply, 200, {
      href: `${workloadHref(org, w.id)}/coexistence_impact`,
      workload: { href: workloadHref(org, w.id), name: w.name, hostname: w.hostname },
      backend: backend ?? null,
      firewall_mode: agent.applied_mode,
      ruleset_read_at: agent.ruleset_at,
      elements_omitted: ruleset?.elementsOmitted === true,
      firewalls: survey.firewalls ?? [],
      foreign_tables: survey.foreignTables ?? [],
      recommendations: survey.recommendations ?? [],
      impacts,
    })
  })

  /**
   * The path of one packet through every firewall on the host, from the agent's live ruleset:
   * which rule decides, what our policy decides, and whether we see (and report) it.
   */
  api.get('/orgs/:org/workloads/:id/explain', async (req, reply) => {
    const org = orgOf(req)
    const asked = explainQuery(req.query as Record<string, unknown>)
    if (!asked) return
    const { src, dst, proto, port, sport } = asked
    const { w, agent, ruleset, failsafe } = await hostOf(org, (req.params as { id: string }).id)
    if (!ruleset)
      throw invalidOne(
        'ruleset_not_reported',
        `the agent of ${w.name} has not reported its ruleset yet; try again after its next heartbeat`,
      )
    const own = w.interfaces.map((i) => i.address)
    const path: Packet['path'] = own.includes(dst.text)
      ? 'in'
      : own.includes(src.text)
        ? 'out'
        : 'forward'
    const withPorts = proto === 6 || proto === 17 || proto === 132 || proto === 136
    const packet: Packet = {
      path,
      family: src.family,
      src: src.text,
      dst: dst.text,
      proto,
      ...(withPorts && { sport, ...(port !== undefined && { dport: port }) }),
      ct: 'new',
    }
    const trace = tracePacket(ruleset, packet)
    const current = await currentPolicy(db, org, w.id)
    const decision =
      current && path !== 'forward'
        ? decide(current.policy, failsafe, {
            direction: path === 'in' ? 'inbound' : 'outbound',
            peer: path === 'in' ? src.text : dst.text,
            proto,
            ...(port !== undefined && { port }),
          })
        : undefined
    const rule = current?.policy.rules.find((r) => r.key === decision?.ruleKey)
    const reported =
      trace.sawUs &&
      decision !== undefined &&
      decision.stage !== 'loopback' &&
      decision.stage !== 'failsafe' &&
      current !== undefined &&
      loggedDecisions(current.policy.visibilityLevel).has(decision.decision)
    return json(reply, 200, {
      workload: { href: workloadHref(org, w.id), name: w.name },
      packet,
      ruleset_read_at: agent.ruleset_at,
      verdict: trace.verdict,
      decided_by: trace.decidedBy ?? null,
      policy_decision: decision?.decision ?? 'unknown',
      policy_stage: decision?.stage ?? null,
      rule_href: rule?.ruleHref ?? null,
      seen_by_palisade: trace.sawUs,
      reported_as_flow: reported,
      palisade_verdict: trace.ours ?? null,
      uncertain: trace.uncertain,
      steps: trace.steps,
    })
  })
}
