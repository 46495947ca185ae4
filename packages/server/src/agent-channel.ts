import type { FastifyInstance, FastifyRequest } from 'fastify'
import { addrToBigInt, OS_PLATFORMS } from '@palisade/model'
import type { AppContext } from './context.js'
import { newUuid, randomSecret, sameSecret, sha256 } from './crypto.js'
import { ApiError, forbidden, invalidOne } from './errors.js'
import { PerMinuteLimit } from './rate-limit.js'
import { bodyObject, json, jsonText } from './http.js'
import { now } from './clock.js'
import { resourceChange } from './audit.js'
import { recordEvent } from './stores/events.js'
import type { FlowSummaryUpload } from '@palisade/model'
import { GroupCommit } from './group-commit.js'
import { writeStatusReports } from './stores/agent-status.js'
import {
  agentCredential,
  deleteAgent,
  insertAgent,
  pendingUnpair,
  unpairOf,
} from './stores/agents.js'
import { deleteHostPolicy } from './stores/host-policies.js'
import { findPairingKey, profileOfKey, useKey } from './stores/pairing.js'
import { deleteWorkload, insertWorkload, moveWorkload } from './stores/workloads.js'
import { ingestFlows } from './stores/flows.js'
import type { WorkloadInterface } from './validate.js'
import { Checker, interfacesOf } from './validate.js'
import { agentHref, workloadHref } from './hrefs.js'

/** The agent channel: ours, not Illumio's private protocol. Every route names the agent. */
export const AGENT_PREFIX = '/agent/v1'
const LONG_POLL_MS = 25_000
const AGENT_EVENT_TYPES = new Set([
  'agent.tampering',
  'agent.firewall_apply_failed',
  'agent.health',
  'agent.suspend',
  'agent.unsuspend',
  'agent.goodbye',
])

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
    const row = await agentCredential(db, id)
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
  const agentActor = (a: Pick<AgentAuth, 'id' | 'org' | 'hostname'>) => ({
    agent: { href: agentHref(a.org, a.id), hostname: a.hostname },
  })

  app.post(`${AGENT_PREFIX}/activate`, async (req, reply) => {
    activations.take(req.ip)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', [
      'activation_code',
      'hostname',
      'os_platform',
      'os_detail',
      'interfaces',
      'agent_type',
    ])
    const code = c.string(body, 'activation_code', '$', { required: true, max: 128 })
    const hostname = c.string(body, 'hostname', '$', { required: true, max: 255 })
    const platform = c.oneOf(body, 'os_platform', '$', OS_PLATFORMS) ?? 'linux'
    c.string(body, 'os_detail', '$', { max: 255 })
    const interfaces = interfacesOf(c, body) ?? []
    c.done()
    const result = await db.transaction().execute(async (tx) => {
      const key = await findPairingKey(tx, sha256(code ?? ''))
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
      const profile = await profileOfKey(tx, key)
      if (profile.enabled !== 1)
        throw invalidOne('pairing_profile_disabled', 'the pairing profile of this code is disabled')
      await useKey(tx, key)
      const org = key.org_id
      const workloadId = newUuid()
      const agentId = newUuid()
      const secret = randomSecret(32)
      const ts = now()
      await insertWorkload(tx, {
        id: workloadId,
        org_id: org,
        name: hostname ?? '',
        hostname: hostname ?? '',
        managed: 1,
        agent_type: profile.agent_type,
        os_platform: platform,
        enforcement_mode: profile.enforcement_mode,
        visibility_level: profile.visibility_level,
        labels: profile.labels,
        interfaces,
        external_data_set: null,
        external_data_reference: null,
        created_at: ts,
        updated_at: ts,
      })
      await insertAgent(tx, { id: agentId, org, workloadId, tokenHash: sha256(secret), at: ts })
      const auth = { id: agentId, org, workloadId, hostname: hostname ?? '' }
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
  app.get(`${AGENT_PREFIX}/agents/:agent/policy`, async (req, reply) => {
    const a = await agentAuth(req)
    const q = req.query as { known?: string; wait?: string }
    const wait = Math.min(Number(q.wait ?? LONG_POLL_MS / 1000), LONG_POLL_MS / 1000) * 1000
    const abort = new AbortController()
    req.raw.once('close', () => abort.abort())
    if (a.unpair) return json(reply, 410, { unpair: { firewall_restore: a.unpair } })
    const got = await ctx.policyFeed.waitForChange(a.workloadId, q.known, wait, abort.signal)
    if (!got) {
      // Woken without a policy: the wait ran out, or an unpair here ended it. (An unpair through
      // another server is seen at the next poll.)
      const unpairNow = await pendingUnpair(db, a.id)
      if (unpairNow) return json(reply, 410, { unpair: { firewall_restore: unpairNow } })
      return reply.code(304).send()
    }
    // The stored policy text goes out as it is: a thousand agents woken at once cost no parsing.
    return jsonText(reply, 200, `{"hash":${JSON.stringify(got.hash)},"policy":${got.text}}`)
  })

  /** A status report, checked; throws the 406 a malformed one gets. */
  function statusReportOf(req: FastifyRequest) {
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['applied', 'health', 'survey', 'interfaces', 'ruleset', 'backend'])
    const applied =
      body.applied === undefined || body.applied === null
        ? undefined
        : c.object(body.applied, '$.applied')
    if (applied) {
      c.int(applied, 'version', '$.applied', { required: true, min: 0 })
      c.string(applied, 'hash', '$.applied', { required: true, max: 64 })
      c.string(applied, 'mode', '$.applied', { max: 64 })
    }
    const health = body.health === undefined ? undefined : c.object(body.health, '$.health')
    const survey = body.survey === undefined ? undefined : c.object(body.survey, '$.survey')
    // The host's whole live ruleset as the agent parsed it: the server reads it, never runs it.
    const ruleset = body.ruleset === undefined ? undefined : c.object(body.ruleset, '$.ruleset')
    if (ruleset && (!Array.isArray(ruleset.tables) || !Array.isArray(ruleset.ipsets)))
      c.fail('$.ruleset', 'must be {"tables": [...], "ipsets": [...]}')
    const backend = c.oneOf(body, 'backend', '$', ['nftables', 'iptables-nft', 'iptables-legacy'])
    const interfaces = interfacesOf(c, body)
    c.done()
    return { applied, health, survey, ruleset, backend, interfaces }
  }

  app.post(`${AGENT_PREFIX}/agents/:agent/status`, async (req, reply) => {
    const [id, secret] = credentialOf(req)
    let report
    try {
      report = statusReportOf(req)
    } catch (e) {
      await agentAuth(req) // a stranger learns that it is one (401), not what the body lacks
      throw e
    }
    const { applied, health, survey, ruleset, backend, interfaces } = report
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
      applied: applied
        ? { version: applied.version as number, mode: (applied.mode as string) ?? null }
        : null,
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
  async function followAddresses(a: AgentAuth, interfaces: WorkloadInterface[]): Promise<void> {
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
  app.post(`${AGENT_PREFIX}/agents/:agent/goodbye`, async (req, reply) => {
    const a = await agentAuth(req)
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
  app.post(`${AGENT_PREFIX}/agents/:agent/events`, async (req, reply) => {
    const a = await agentAuth(req)
    const list = req.body
    if (!Array.isArray(list) || list.length > 1000)
      throw invalidOne('input_validation_error', 'the body must be a list of at most 1,000 events')
    const c = new Checker()
    list.forEach((e, i) => {
      const o = c.object(e, `$[${i}]`)
      if (!o) return
      c.string(o, 'uuid', `$[${i}]`, { required: true, max: 64 })
      c.oneOf(o, 'event_type', `$[${i}]`, [...AGENT_EVENT_TYPES], { required: true })
      c.oneOf(
        o,
        'severity',
        `$[${i}]`,
        ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'],
        { required: true },
      )
      const ts = c.string(o, 'timestamp', `$[${i}]`, { required: true, max: 64 })
      if (ts !== undefined && Number.isNaN(Date.parse(ts)))
        c.fail(`$[${i}].timestamp`, 'must be an RFC 3339 time')
      c.object(o.details ?? {}, `$[${i}].details`)
    })
    c.done()
    await db.transaction().execute(async (tx) => {
      for (const e of list as {
        uuid: string
        event_type: string
        severity: string
        timestamp: string
        details?: unknown
      }[]) {
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
            { uuid: newUuid(), notification_type: e.event_type, info: e.details ?? {} },
          ],
        })
      }
    })
    return reply.code(204).send()
  })

  /** Flow summaries, in batches; a re-sent batch is stored once (summaries carry uuids). */
  app.post(`${AGENT_PREFIX}/agents/:agent/flows`, async (req, reply) => {
    const a = await agentAuth(req)
    const list = req.body
    if (!Array.isArray(list) || list.length > 1000)
      throw invalidOne(
        'input_validation_error',
        'the body must be a list of at most 1,000 flow summaries',
      )
    const c = new Checker()
    list.forEach((f, i) => checkFlowUpload(c, f, `$[${i}]`))
    c.done()
    await ingestFlows(db, a.org, a.workloadId, list as FlowSummaryUpload[])
    return reply.code(204).send()
  })
}

const FLOW_KEYS = [
  'uuid',
  'direction',
  'src_ip',
  'dst_ip',
  'src_port',
  'port',
  'proto',
  'icmp_type',
  'icmp_code',
  'policy_decision',
  'rule_href',
  'num_connections',
  'first_seen',
  'last_seen',
  'dropped_downstream',
]

function checkFlowUpload(c: Checker, x: unknown, path: string): void {
  const o = c.object(x, path)
  if (!o) return
  c.only(o, path, FLOW_KEYS)
  c.string(o, 'uuid', path, { required: true, max: 64 })
  c.oneOf(o, 'direction', path, ['inbound', 'outbound'], { required: true })
  for (const k of ['src_ip', 'dst_ip']) {
    const ip = c.string(o, k, path, { required: true, max: 64 })
    if (ip !== undefined && !isIpAddress(ip)) c.fail(`${path}.${k}`, 'must be an IP address')
  }
  for (const k of ['src_port', 'port']) c.int(o, k, path, { min: 0, max: 65535 })
  c.int(o, 'proto', path, { required: true, min: 0, max: 255 })
  for (const k of ['icmp_type', 'icmp_code']) c.int(o, k, path, { min: 0, max: 255 })
  c.oneOf(o, 'policy_decision', path, ['allowed', 'potentially_blocked', 'blocked'], {
    required: true,
  })
  c.string(o, 'rule_href', path, { max: 512, nullable: true })
  c.int(o, 'num_connections', path, { required: true, min: 1 })
  const times = ['first_seen', 'last_seen'].map((k) => {
    const t = c.string(o, k, path, { required: true, max: 64 })
    if (t !== undefined && Number.isNaN(Date.parse(t)))
      c.fail(`${path}.${k}`, 'must be an RFC 3339 time')
    return t
  })
  if (times[0] && times[1] && Date.parse(times[0]) > Date.parse(times[1]))
    c.fail(`${path}.last_seen`, 'must not be before first_seen')
  c.bool(o, 'dropped_downstream', path, { required: true })
}

function isIpAddress(text: string): boolean {
  try {
    addrToBigInt(text)
    return !text.includes('/')
  } catch {
    return false
  }
}
