import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RestoreMode } from '@palisade/protocol'
import { checkRelease, servedPackage, servedReleases } from '../agent-upgrade.js'
import { resourceChange } from '../audit.js'
import type { AppContext } from '../context.js'
import { invalidOne, orNotFound } from '../errors.js'
import { idOf, isWorkloadHrefOf, venHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import {
  agentIdsIn,
  agentsOfWorkloads,
  agentsWithWorkloads,
  findAgent,
  markUnpairing,
  setTargetRelease,
  setVenNames,
  workloadsOfAgents,
} from '../stores/agents.js'
import { recordEvent } from '../stores/events.js'
import { Checker } from '../validate.js'
import { venMatches, venStatusOf } from '../workloads/workload-filters.js'
import { venView } from '../workloads/workload-view.js'
import { workloadOf } from '../workloads/workload-writes.js'

/**
 * How an unpaired agent leaves the host's firewall: the vendor's `default` (our rules removed),
 * `saved` (as before the agent) and `disable` (every port open), and Palisade's own `open`
 * (the same as disable) and `closed`.
 */
const RESTORE = {
  default: 'default',
  saved: 'saved',
  disable: 'open',
  open: 'open',
  closed: 'closed',
} satisfies Record<string, RestoreMode>
type Restore = keyof typeof RESTORE

/** VENs: the agents, read-mostly. */
export function registerVens(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  api.get('/orgs/:org/vens', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const out = (await agentsWithWorkloads(db, org))
      .filter(({ agent, workload }) => venMatches(f, agent, workload))
      .map(({ agent, workload }) => venView(org, agent, workload))
    return collection(req, reply, ctx.jobs, org, out)
  })

  /**
   * Unpairs agents: each is told on its next policy request, restores the firewall as asked and
   * forgets its credential.
   */
  const unpair = async (req: FastifyRequest, agentIds: string[], mode: Restore) => {
    const org = orgOf(req)
    await db.transaction().execute(async (tx) => {
      await markUnpairing(tx, agentIds, RESTORE[mode])
      await recordEvent(tx, org, {
        event_type: 'agents.unpair',
        created_by: userActor(req),
        resource_changes: agentIds.map((id) =>
          resourceChange('ven', venHref(org, id), 'update', undefined, { firewall_restore: mode }),
        ),
      })
    })
    for (const w of await workloadsOfAgents(db, agentIds)) ctx.policyFeed.kick(w)
  }

  api.put('/orgs/:org/vens/unpair', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['vens', 'firewall_restore'])
    const mode =
      c.oneOf(body, 'firewall_restore', '$', Object.keys(RESTORE) as Restore[]) ?? 'default'
    const hrefs = (c.array(body, 'vens', '$', { required: true, max: 1000 }) ?? []).map((x, i) =>
      c.hrefRef(x, `$.vens[${i}]`),
    )
    c.done()
    const ids = hrefs.map((h) => idOf(h ?? ''))
    const found = await agentIdsIn(db, org, ids)
    const missing = hrefs.filter((_h, i) => !found.includes(ids[i] ?? ''))
    if (missing.length > 0) throw invalidOne('invalid_ven', `no such VEN: ${missing.join(', ')}`)
    await unpair(req, found, mode)
    return reply.code(204).send()
  })

  /** The vendor's older form: workloads by href, `ip_table_restore` for `firewall_restore`. */
  api.put('/orgs/:org/workloads/unpair', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['workloads', 'ip_table_restore'])
    const mode =
      c.oneOf(body, 'ip_table_restore', '$', Object.keys(RESTORE) as Restore[]) ?? 'default'
    const hrefs = (c.array(body, 'workloads', '$', { required: true, max: 1000 }) ?? []).flatMap(
      (x, i) => {
        const h = c.hrefRef(x, `$.workloads[${i}]`)
        if (h !== undefined && !isWorkloadHrefOf(org, h))
          return c.fail(`$.workloads[${i}]`, `${h} is not a workload of org ${org}`) ?? []
        return h === undefined ? [] : [h]
      },
    )
    if (hrefs.length === 0 && Array.isArray(body.workloads))
      c.fail('$.workloads', 'must name at least one workload')
    c.done()
    const agents = await agentsOfWorkloads(db, org, hrefs.map(idOf))
    const unmanaged = hrefs.filter((h) => !agents.some((a) => a.workload_id === idOf(h)))
    if (unmanaged.length > 0)
      throw invalidOne(
        'workload_not_managed',
        `no agent manages ${unmanaged.join(', ')}: only managed workloads can be unpaired (delete an unmanaged one instead)`,
      )
    await unpair(
      req,
      agents.map((a) => a.id),
      mode,
    )
    return reply.code(204).send()
  })

  /**
   * Orders agents to run `release`, which must be the agent build this server serves (anything
   * else: 406). Each downloads it at its next status report, swaps it in and restarts; one
   * whose new build does not report rolls back and says so in an event. Answers with how many
   * were ordered and, per problem, the VENs it concerns (unknown ones, ones being unpaired).
   */
  api.put('/orgs/:org/vens/upgrade', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['vens', 'release'])
    const release = c.string(body, 'release', '$', { required: true, max: 64 })
    const hrefs = (c.array(body, 'vens', '$', { required: true, max: 1000 }) ?? []).map(
      (x, i) => c.hrefRef(x, `$.vens[${i}]`) ?? '',
    )
    c.done()
    checkRelease(await servedPackage(ctx.agentDir), release as string)
    const views = new Map(
      (await agentsWithWorkloads(db, org)).map(({ agent }) => [venHref(org, agent.id), agent]),
    )
    const unknown = hrefs.filter((h) => !views.has(h))
    const leaving = hrefs.filter((h) => views.get(h)?.status.startsWith('unpairing:'))
    const ids = [
      ...new Set(
        hrefs.filter((h) => !unknown.includes(h) && !leaving.includes(h)).map((h) => idOf(h)),
      ),
    ]
    await db.transaction().execute(async (tx) => {
      await setTargetRelease(tx, ids, release as string)
      if (ids.length > 0)
        await recordEvent(tx, org, {
          event_type: 'agents.upgrade',
          created_by: userActor(req),
          resource_changes: ids.map((id) =>
            resourceChange('ven', venHref(org, id), 'update', undefined, { release }),
          ),
        })
    })
    const errors = [
      ...(unknown.length > 0
        ? [{ token: 'invalid_ven', message: 'no such VEN', hrefs: unknown }]
        : []),
      ...(leaving.length > 0
        ? [{ token: 'ven_unpairing', message: 'the VEN is being unpaired', hrefs: leaving }]
        : []),
    ]
    return json(reply, 200, { release, vens_upgraded: ids.length, errors })
  })

  /** Palisade: the agent releases this server serves (none without an agent package). */
  api.get('/orgs/:org/vens/releases', async (req, reply) =>
    collection(req, reply, ctx.jobs, orgOf(req), await servedReleases(ctx.agentDir)),
  )

  api.get('/orgs/:org/vens/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const a = orNotFound(await findAgent(db, org, id), venHref(org, id))
    return json(reply, 200, venView(org, a, await workloadOf(db, org, a.workload_id)))
  })

  /** A VEN's own name and description. Its status is the agent's: it cannot be set here yet. */
  api.put('/orgs/:org/vens/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const before = orNotFound(await findAgent(db, org, id), venHref(org, id))
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['name', 'description', 'status', 'target_pce_fqdn'])
    const name = c.string(body, 'name', '$', { max: 255, nullable: true })
    const description = c.string(body, 'description', '$', { max: 4096, nullable: true })
    const status = c.oneOf(body, 'status', '$', ['active', 'suspended'])
    // Clients send the status they read back: only a change is refused.
    if (status !== undefined && status !== venStatusOf(before))
      c.fail(
        '$.status',
        `marking a VEN ${status} through the API is not supported yet (it is ${venStatusOf(before)}); run "palisade agent ${status === 'suspended' ? 'suspend' : 'unsuspend'}" on the host`,
        'unsupported_field_value',
      )
    const target = c.string(body, 'target_pce_fqdn', '$', { nullable: true })
    if (target)
      c.fail(
        '$.target_pce_fqdn',
        'there is no other server to move this VEN to (Palisade has no supercluster); leave it out',
        'unsupported_field_value',
      )
    c.done()
    const fields = {
      // An empty name or description clears it (the workload's name shows again).
      ...(body.name !== undefined && { name: name || null }),
      ...(body.description !== undefined && { description: description || null }),
    }
    await db.transaction().execute(async (tx) => {
      await setVenNames(tx, id, fields)
      await recordEvent(tx, org, {
        event_type: 'ven.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'ven',
            venHref(org, id),
            'update',
            { name: before.name, description: before.description },
            { name: before.name, description: before.description, ...fields },
          ),
        ],
      })
    })
    return reply.code(204).send()
  })
}
