import type { FastifyInstance } from 'fastify'
import type { WorkloadInterface } from '@palisade/model'
import {
  AGENT_PARAM,
  checkEventsBatch,
  checkFlowsBatch,
  checkStatusReport,
  eventsRoute,
  flowsRoute,
  goodbyeRoute,
  STATUS_REPLY,
  statusRoute,
} from '@palisade/protocol'
import type { StatusReply } from '@palisade/protocol'
import { DEFAULT_AGENT_DIR, readAgentPackage } from '../agent-package.js'
import { upgradeOrder } from '../agent-upgrade.js'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid, sha256 } from '../crypto.js'
import { GroupCommit } from '../group-commit.js'
import { workloadHref } from '../hrefs.js'
import { writeStatusReports } from '../stores/agent-status.js'
import { deleteAgent } from '../stores/agents.js'
import { recordEvent } from '../stores/events.js'
import { ingestFlows } from '../stores/flows.js'
import { deleteHostPolicy } from '../stores/host-policies.js'
import { deleteWorkload, moveWorkload } from '../stores/workloads.js'
import { accepted } from '../validate.js'
import type { AgentAuth } from './agent-auth.js'
import { agentActor, agentAuth, credentialOf, unauthenticated } from './agent-auth.js'

/** What agents report: their status (and addresses), events, flow summaries, and goodbye. */
export function registerAgentReports(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  // Status reports come in bursts (every agent right after a provision): one commit per burst.
  const statusWrites = new GroupCommit(db, writeStatusReports, 500, ctx.writeLanes)
  /** The package upgrade orders name; none while it cannot be read (the order waits). */
  const upgradePackage = () =>
    readAgentPackage(ctx.agentDir ?? DEFAULT_AGENT_DIR).catch((e: Error) => {
      app.log.warn({ msg: 'no upgrade orders: the agent package cannot be read', error: e.message })
      return undefined
    })

  app.post(statusRoute(AGENT_PARAM), async (req, reply) => {
    const [id, secret] = credentialOf(req)
    const report = checkStatusReport(req.body)
    // A stranger learns that it is one (401), not what its body lacks.
    if (!report.ok) await agentAuth(db, req)
    const { applied, health, survey, ruleset, backend, interfaces, build } = accepted(report)
    // The usual report (a heartbeat, an applied version) is authenticated by the write itself,
    // which stores a whole burst of reports in one statement; one that moves addresses, or names
    // another agent's route, is checked first.
    if (interfaces || id !== (req.params as { agent: string }).agent) {
      const a = await agentAuth(db, req) // refuses another agent's route
      if (interfaces) await followAddresses(a, interfaces)
    }
    const written = await statusWrites.run({
      agentId: id,
      tokenHash: sha256(secret),
      at: now(),
      applied: applied ? { version: applied.version, mode: applied.mode ?? null } : null,
      health:
        health || applied
          ? JSON.stringify({ ...health, ...(applied && { applied_hash: applied.hash }) })
          : null,
      survey: survey ? JSON.stringify(survey) : null,
      ruleset: ruleset ? JSON.stringify(ruleset) : null,
      backend: backend ?? null,
      build: build ? JSON.stringify(build) : null,
    })
    if (!written) throw unauthenticated()
    // Orders go only to an agent that says what it runs (it reads them); an older one gets 204.
    const order =
      build && written.targetRelease !== null
        ? upgradeOrder(await upgradePackage(), written.targetRelease, build)
        : undefined
    if (!order) return reply.code(STATUS_REPLY.stored).send()
    return reply.code(STATUS_REPLY.orders).send({ upgrade: order } satisfies StatusReply)
  })

  /**
   * The host's addresses changed (a new lease, an interface added): the workload follows, and
   * the hosts that have it as a peer get a new policy.
   */
  async function followAddresses(
    a: AgentAuth,
    interfaces: readonly WorkloadInterface[],
  ): Promise<void> {
    const changed = await db.transaction().execute(async (tx) => {
      const before = await moveWorkload(tx, a.workloadId, interfaces, now())
      if (!before) return false
      await recordEvent(tx, a.org, {
        event_type: 'workload.update',
        created_by: agentActor(a),
        resource_changes: [
          resourceChange(
            'workload',
            workloadHref(a.org, a.workloadId),
            'update',
            { interfaces: before },
            { interfaces },
          ),
        ],
      })
      return true
    })
    if (changed) ctx.hostPolicies.recompute(a.org).catch((e: Error) => app.log.error(e))
  }

  /** A graceful stop: the agent says goodbye, so its silence is not mistaken for a failure. */
  app.post(goodbyeRoute(AGENT_PARAM), async (req, reply) => {
    const a = await agentAuth(db, req)
    if (a.unpair) {
      // The agent restored the firewall and forgot its credential: it is gone for good.
      await db.transaction().execute(async (tx) => {
        await deleteHostPolicy(tx, a.workloadId)
        await deleteAgent(tx, a.id)
        await deleteWorkload(tx, a.workloadId)
        await recordEvent(tx, a.org, {
          event_type: 'agent.deactivate',
          created_by: agentActor(a),
          resource_changes: [
            resourceChange('workload', workloadHref(a.org, a.workloadId), 'delete', {
              hostname: a.hostname,
            }),
          ],
        })
      })
      return reply.code(204).send()
    }
    await recordEvent(db, a.org, {
      event_type: 'agent.goodbye',
      created_by: agentActor(a),
      resource_changes: [
        resourceChange('workload', workloadHref(a.org, a.workloadId), 'update', undefined, {}),
      ],
    })
    return reply.code(204).send()
  })

  /** Events from the agent, in batches; a re-sent batch is stored once (events carry uuids). */
  app.post(eventsRoute(AGENT_PARAM), async (req, reply) => {
    const a = await agentAuth(db, req)
    const events = accepted(checkEventsBatch(req.body))
    await db.transaction().execute(async (tx) => {
      for (const e of events) {
        await recordEvent(tx, a.org, {
          uuid: e.uuid,
          event_type: e.event_type,
          severity: e.severity,
          timestamp: new Date(e.timestamp).toISOString(),
          created_by: agentActor(a),
          agent_id: a.id,
          resource_changes: [
            {
              uuid: newUuid(),
              resource: { workload: { href: workloadHref(a.org, a.workloadId) } },
              change_type: 'update',
              changes: {},
            },
          ],
          notifications: [{ uuid: newUuid(), notification_type: e.event_type, info: e.details }],
        })
      }
    })
    return reply.code(204).send()
  })

  /** Flow summaries, in batches; a re-sent batch is stored once (summaries carry uuids). */
  app.post(flowsRoute(AGENT_PARAM), async (req, reply) => {
    const a = await agentAuth(db, req)
    await ingestFlows(db, a.org, a.workloadId, accepted(checkFlowsBatch(req.body)))
    return reply.code(204).send()
  })
}
