import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WorkloadInterface } from '@palisade/model'
import {
  activateRoute,
  AGENT_PARAM,
  checkActivateRequest,
  checkEventsBatch,
  checkFlowsBatch,
  checkStatusReport,
  eventsRoute,
  flowsRoute,
  goodbyeRoute,
  LONG_POLL_SECONDS,
  POLICY_STATUS,
  policyRoute,
  statusRoute,
} from '@palisade/protocol'
import type { AppContext } from './app.js'
import { newUuid, randomSecret, sameSecret, sha256 } from './crypto.js'
import { ApiError, forbidden, invalidOne } from './errors.js'
import { PerMinuteLimit } from './rate-limit.js'
import { workloadHref } from './host-policies.js'
import { json, jsonText } from './http.js'
import { now, recordEvent, resourceChange } from './store.js'
import { GroupCommit } from './group-commit.js'
import { writeStatusReports } from './agent-status.js'
import { ingestFlows } from './traffic/flow-store.js'
import { accepted } from './validate.js'

interface AgentAuth {
  readonly id: string
  readonly org: number
  readonly workloadId: string
  readonly hostname: string
  /** The firewall restore a pending unpair asked for. */
  readonly unpair: string | undefined
}

export function registerAgentChannel(
  app: FastifyInstance,
  ctx: AppContext,
  activationsPerMinute: number,
): void {
  const { db } = ctx
  const activations = new PerMinuteLimit(activationsPerMinute)
  // Status reports come in bursts (every agent right after a provision): one commit per burst.
  const statusWrites = new GroupCommit(db, writeStatusReports, 500, ctx.writeLanes)

  /** `Authorization: Bearer <agent id>.<secret>`, as `[agent id, secret]`. */
  const credentialOf = (req: FastifyRequest): [string, string] => {
    const h = req.headers.authorization ?? ''
    const [id = '', secret = ''] = h.startsWith('Bearer ') ? h.slice(7).split('.') : []
    return [id, secret]
  }
  const unauthenticated = () =>
    new ApiError(401, [
      { token: 'agent_authentication_required', message: 'a valid agent credential is required' },
    ])

  /** The agent a request's credential names; it may only use its own routes. */
  async function agentAuth(req: FastifyRequest): Promise<AgentAuth> {
    const [id, secret] = credentialOf(req)
    const row = await db
      .selectFrom('agents')
      .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
      .select([
        'agents.id',
        'agents.org_id',
        'agents.token_hash',
        'agents.workload_id',
        'agents.status',
        'workloads.hostname',
      ])
      .where('agents.id', '=', id)
      .executeTakeFirst()
    if (!row || !sameSecret(row.token_hash, sha256(secret))) throw unauthenticated()
    if ((req.params as { agent?: string }).agent !== row.id)
      throw forbidden('an agent may read and write only its own data')
    return {
      id: row.id,
      org: row.org_id,
      workloadId: row.workload_id,
      hostname: row.hostname,
      unpair: unpairOf(row.status),
    }
  }
  /** The firewall restore an unpair asked for, if one is pending. */
  const unpairOf = (status: string | undefined) =>
    status?.startsWith('unpairing:') ? status.slice('unpairing:'.length) : undefined
  /** Read again after a wait: an unpair may have been asked for meanwhile. */
  const unpairRequested = async (id: string) =>
    unpairOf(
      (await db.selectFrom('agents').select('status').where('id', '=', id).executeTakeFirst())
        ?.status,
    )
  const agentActor = (a: Pick<AgentAuth, 'id' | 'org' | 'hostname'>) => ({
    agent: { href: `/orgs/${a.org}/agents/${a.id}`, hostname: a.hostname },
  })

  app.post(activateRoute(), async (req, reply) => {
    activations.take(req.ip)
    const {
      activation_code: code,
      hostname,
      os_platform: platform,
      interfaces,
    } = accepted(checkActivateRequest(req.body))
    const result = await db.transaction().execute(async (tx) => {
      const key = await tx
        .selectFrom('pairing_keys')
        .selectAll()
        .where('code_hash', '=', sha256(code))
        .executeTakeFirst()
      if (!key)
        throw invalidOne(
          'invalid_activation_code',
          'this activation code is not valid; generate one from a pairing profile',
        )
      if (key.expires_at !== null && key.expires_at < now())
        throw invalidOne(
          'activation_code_expired',
          `this activation code expired at ${key.expires_at}; generate a new one`,
        )
      if (key.uses_left !== null && key.uses_left <= 0)
        throw invalidOne(
          'activation_code_used_up',
          'this activation code has been used as often as its pairing profile allows',
        )
      const profile = await tx
        .selectFrom('pairing_profiles')
        .selectAll()
        .where('id', '=', key.profile_id)
        .executeTakeFirstOrThrow()
      if (profile.enabled !== 1)
        throw invalidOne('pairing_profile_disabled', 'the pairing profile of this code is disabled')
      if (key.uses_left !== null)
        await tx
          .updateTable('pairing_keys')
          .set({ uses_left: key.uses_left - 1 })
          .where('code_hash', '=', key.code_hash)
          .execute()
      const org = key.org_id
      const workloadId = newUuid()
      const agentId = newUuid()
      const secret = randomSecret(32)
      const ts = now()
      await tx
        .insertInto('workloads')
        .values({
          id: workloadId,
          org_id: org,
          name: hostname,
          hostname,
          managed: 1,
          agent_type: profile.agent_type,
          os_platform: platform,
          enforcement_mode: profile.enforcement_mode,
          visibility_level: profile.visibility_level,
          labels: profile.labels,
          interfaces: JSON.stringify(interfaces),
          external_data_set: null,
          external_data_reference: null,
          created_at: ts,
          updated_at: ts,
        })
        .execute()
      await tx
        .insertInto('agents')
        .values({
          id: agentId,
          org_id: org,
          workload_id: workloadId,
          token_hash: sha256(secret),
          status: 'active',
          last_heartbeat_at: ts,
          applied_version: null,
          applied_at: null,
          applied_mode: null,
          sync_state: 'syncing',
          health: '{}',
          survey: '{}',
          created_at: ts,
          ruleset: null,
          ruleset_at: null,
          backend: null,
        })
        .execute()
      const auth = { id: agentId, org, workloadId, hostname }
      await recordEvent(tx, org, {
        event_type: 'agent.activate',
        created_by: agentActor(auth),
        resource_changes: [
          resourceChange('workload', workloadHref(org, workloadId), 'create', undefined, {
            hostname,
            interfaces,
          }),
        ],
      })
      return { org, agentId, workloadId, token: `${agentId}.${secret}` }
    })
    // Not awaited: the new agent's first policy request waits for its host policy anyway, and
    // activations in a burst share one recompute.
    ctx.hostPolicies.recompute(result.org).catch((e: Error) => req.log.error(e))
    return json(reply, 201, {
      agent_id: result.agentId,
      workload_href: workloadHref(result.org, result.workloadId),
      token: result.token,
      agent_endpoint: ctx.agentEndpoint(),
    })
  })

  /** Long-poll: answers at once if the agent's host policy differs from `known`, else waits. */
  app.get(policyRoute(AGENT_PARAM), async (req, reply) => {
    const a = await agentAuth(req)
    const q = req.query as { known?: string; wait?: string }
    const wait = Math.min(Number(q.wait ?? LONG_POLL_SECONDS), LONG_POLL_SECONDS) * 1000
    const abort = new AbortController()
    req.raw.once('close', () => abort.abort())
    if (a.unpair)
      return json(reply, POLICY_STATUS.unpair, { unpair: { firewall_restore: a.unpair } })
    const got = await ctx.hostPolicies.waitForChange(a.workloadId, q.known, wait, abort.signal)
    if (!got) {
      // Woken without a policy: the wait ran out, or an unpair here ended it. (An unpair through
      // another server is seen at the next poll.)
      const unpairNow = await unpairRequested(a.id)
      if (unpairNow)
        return json(reply, POLICY_STATUS.unpair, { unpair: { firewall_restore: unpairNow } })
      return reply.code(POLICY_STATUS.unchanged).send()
    }
    // The stored policy text goes out as it is: a thousand agents woken at once cost no parsing.
    return jsonText(
      reply,
      POLICY_STATUS.policy,
      `{"hash":${JSON.stringify(got.hash)},"policy":${got.text}}`,
    )
  })

  app.post(statusRoute(AGENT_PARAM), async (req, reply) => {
    const [id, secret] = credentialOf(req)
    const report = checkStatusReport(req.body)
    // A stranger learns that it is one (401), not what its body lacks.
    if (!report.ok) await agentAuth(req)
    const { applied, health, survey, ruleset, backend, interfaces } = accepted(report)
    // The usual report (a heartbeat, an applied version) is authenticated by the write itself,
    // which stores a whole burst of reports in one statement; one that moves addresses, or names
    // another agent's route, is checked first.
    if (interfaces || id !== (req.params as { agent: string }).agent) {
      const a = await agentAuth(req) // refuses another agent's route
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
    })
    if (!written) throw unauthenticated()
    return reply.code(204).send()
  })

  /**
   * The host's addresses changed (a new lease, an interface added): the workload follows, and
   * the hosts that have it as a peer get a new policy.
   */
  async function followAddresses(
    a: AgentAuth,
    interfaces: readonly WorkloadInterface[],
  ): Promise<void> {
    const text = JSON.stringify(interfaces)
    const changed = await db.transaction().execute(async (tx) => {
      const w = await tx
        .selectFrom('workloads')
        .select('interfaces')
        .where('id', '=', a.workloadId)
        .executeTakeFirstOrThrow()
      if (w.interfaces === text) return false
      await tx
        .updateTable('workloads')
        .set({ interfaces: text, updated_at: now() })
        .where('id', '=', a.workloadId)
        .execute()
      await recordEvent(tx, a.org, {
        event_type: 'workload.update',
        created_by: agentActor(a),
        resource_changes: [
          resourceChange(
            'workload',
            workloadHref(a.org, a.workloadId),
            'update',
            { interfaces: JSON.parse(w.interfaces) as unknown },
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
    const a = await agentAuth(req)
    if (a.unpair) {
      // The agent restored the firewall and forgot its credential: it is gone for good.
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('host_policies').where('workload_id', '=', a.workloadId).execute()
        await tx.deleteFrom('agents').where('id', '=', a.id).execute()
        await tx.deleteFrom('workloads').where('id', '=', a.workloadId).execute()
        await recordEvent(tx, a.org, {
          event_type: 'agent.deactivate',
          created_by: agentActor(a),
          resource_changes: [
            resourceChange(
              'workload',
              workloadHref(a.org, a.workloadId),
              'delete',
              { hostname: a.hostname },
              undefined,
            ),
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
    const a = await agentAuth(req)
    const list = accepted(checkEventsBatch(req.body))
    await db.transaction().execute(async (tx) => {
      for (const e of list) {
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
    const a = await agentAuth(req)
    const list = accepted(checkFlowsBatch(req.body))
    await ingestFlows(db, a.org, a.workloadId, list)
    return reply.code(204).send()
  })
}
