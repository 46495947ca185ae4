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
import { agentPackageCache, DEFAULT_AGENT_DIR } from '../agent-package.js'
import { upgradeOrder } from '../agent-upgrade.js'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid, sha256 } from '../crypto.js'
import { dayOf } from '../db/flow-partition-ddl.js'
import { cappedDetails } from '../events/event-details.js'
import { GroupCommit } from '../group-commit.js'
import { workloadHref } from '../hrefs.js'
import { writeStatusReports } from '../stores/agent-status.js'
import { allowedRangesOf, deleteAgent, dropForgotten, setGoodbye } from '../stores/agents.js'
import { recordEvent } from '../stores/events.js'
import { ensureFlowPartitions } from '../stores/flow-partitions.js'
import { ingestFlows } from '../stores/flows.js'
import { deleteHostPolicy } from '../stores/host-policies.js'
import { deleteWorkload, findWorkload, moveWorkload } from '../stores/workloads.js'
import { flowIntake } from '../traffic/flow-intake.js'
import { splitByRanges } from '../workloads/allowed-ranges.js'
import { accepted } from '../validate.js'
import type { AgentAuth } from './agent-auth.js'
import {
  agentActor,
  agentAuth,
  agentOf,
  authenticatedFirst,
  credentialOf,
  largeBodyAuthenticatedFirst,
  unauthenticated,
} from './agent-auth.js'

/**
 * The largest body each report takes: a status may carry the host's whole existing ruleset; a
 * batch of events (at most 1,000, details stored capped) and of flow summaries is smaller.
 */
export const BODY_LIMITS = {
  status: 16 * 1024 * 1024,
  events: 8 * 1024 * 1024,
  flows: 4 * 1024 * 1024,
  goodbye: 4 * 1024,
} as const

/** What agents report: their status (and addresses), events, flow summaries, and goodbye. */
export function registerAgentReports(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  /** Routes whose body is read only once the agent's credential is checked. */
  const first = (bodyLimit: number) => ({ onRequest: authenticatedFirst(db), bodyLimit })
  // Status reports come in bursts (every agent right after a provision): one commit per burst.
  const statusWrites = new GroupCommit(db, writeStatusReports, 500, ctx.writeLanes)
  /** The package upgrade orders name; none while it cannot be read (the order waits). */
  const readPackage = agentPackageCache()
  const upgradePackage = () =>
    readPackage(ctx.agentDir ?? DEFAULT_AGENT_DIR).catch((e: Error) => {
      app.log.warn({ msg: 'no upgrade orders: the agent package cannot be read', error: e.message })
      return undefined
    })

  app.post(
    statusRoute(AGENT_PARAM),
    { onRequest: largeBodyAuthenticatedFirst(db), bodyLimit: BODY_LIMITS.status },
    async (req, reply) => {
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
        if (interfaces && !a.forgotten) await followAddresses(a, interfaces)
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
      if (!written) {
        // A forgotten agent's report is taken and dropped: its policy request tells it to unpair.
        if (!(await agentAuth(db, req)).forgotten) throw unauthenticated()
        return reply.code(STATUS_REPLY.stored).send()
      }
      // Orders go only to an agent that says what it runs (it reads them); an older one gets 204.
      const order =
        build && written.targetRelease !== null
          ? upgradeOrder(await upgradePackage(), written.targetRelease, build)
          : undefined
      if (!order) return reply.code(STATUS_REPLY.stored).send()
      return reply.code(STATUS_REPLY.orders).send({ upgrade: order } satisfies StatusReply)
    },
  )

  /**
   * The host's addresses changed (a new lease, an interface added): the workload follows, and
   * the hosts that have it as a peer get a new policy.
   */
  async function followAddresses(
    a: AgentAuth,
    interfaces: readonly WorkloadInterface[],
  ): Promise<void> {
    const { inside, outside } = splitByRanges(await allowedRangesOf(db, a.id), interfaces)
    const changed = await db.transaction().execute(async (tx) => {
      if (outside.length > 0)
        await recordEvent(tx, a.org, {
          event_type: 'agent.addresses_refused',
          severity: 'warning',
          created_by: agentActor(a),
          notifications: [
            {
              notification_type: 'agent.addresses_refused',
              info: {
                workload: workloadHref(a.org, a.workloadId),
                refused: outside.map((i) => `${i.name} ${i.address}`),
                reason: "outside its pairing profile's allowed_ip_ranges",
              },
            },
          ],
        })
      const before = await moveWorkload(tx, a.workloadId, inside, now())
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
            { interfaces: inside },
          ),
        ],
      })
      return true
    })
    if (changed) ctx.hostPolicies.recompute(a.org).catch((e: Error) => app.log.error(e))
  }

  /** A graceful stop: the agent says goodbye, so its silence is not mistaken for a failure. */
  app.post(goodbyeRoute(AGENT_PARAM), first(BODY_LIMITS.goodbye), async (req, reply) => {
    const a = agentOf(req)
    if (a.forgotten) {
      await dropForgotten(db, a.id)
      return reply.code(204).send()
    }
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
    await db.transaction().execute(async (tx) => {
      // Past the org's goodbye timeout the workload is offline (see liveness.ts).
      await setGoodbye(tx, a.id, now())
      await recordEvent(tx, a.org, {
        event_type: 'agent.goodbye',
        created_by: agentActor(a),
        resource_changes: [
          resourceChange('workload', workloadHref(a.org, a.workloadId), 'update', undefined, {}),
        ],
      })
    })
    return reply.code(204).send()
  })

  /** Events from the agent, in batches; a re-sent batch is stored once (events carry uuids). */
  app.post(eventsRoute(AGENT_PARAM), first(BODY_LIMITS.events), async (req, reply) => {
    const a = agentOf(req)
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
          notifications: [
            { uuid: newUuid(), notification_type: e.event_type, info: cappedDetails(e.details) },
          ],
        })
      }
    })
    return reply.code(204).send()
  })

  /** Flow summaries, in batches; a re-sent batch is stored once (summaries carry uuids). */
  app.post(flowsRoute(AGENT_PARAM), first(BODY_LIMITS.flows), async (req, reply) => {
    const a = agentOf(req)
    const flows = accepted(checkFlowsBatch(req.body))
    const w = await findWorkload(db, a.org, a.workloadId)
    const own = new Set((w?.interfaces ?? []).map((i) => i.address))
    const { kept, refused } = flowIntake(flows, own, new Date(now()))
    await ensureFlowPartitions(
      db,
      kept.map((f) => dayOf(f.last_seen)),
    )
    await db.transaction().execute(async (tx) => {
      await ingestFlows(tx, a.org, a.workloadId, kept)
      if (refused.length > 0)
        await recordEvent(tx, a.org, {
          event_type: 'agent.flows_refused',
          severity: 'warning',
          created_by: agentActor(a),
          notifications: [
            {
              notification_type: 'agent.flows_refused',
              info: {
                workload: workloadHref(a.org, a.workloadId),
                refused: refused.length,
                reason: 'neither end is an address of the reporting workload',
                examples: refused.slice(0, 3).map((f) => `${f.src_ip} -> ${f.dst_ip}`),
              },
            },
          ],
        })
    })
    return reply.code(204).send()
  })
}
