import type { FastifyInstance } from 'fastify'
import { RESTORE_MODES } from '@palisade/protocol'
import { checkRelease, servedPackage } from '../agent-upgrade.js'
import { resourceChange } from '../audit.js'
import type { AppContext } from '../context.js'
import { invalidOne, orNotFound } from '../errors.js'
import { idOf, venHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, textMatches, userActor } from '../http.js'
import {
  agentIdsIn,
  agentsWithWorkloads,
  findAgent,
  markUnpairing,
  setTargetRelease,
  workloadsOfAgents,
} from '../stores/agents.js'
import { recordEvent } from '../stores/events.js'
import { Checker } from '../validate.js'
import { venView } from '../workloads/workload-view.js'
import { workloadOf } from '../workloads/workload-writes.js'

/** VENs: the agents, read-mostly. */
export function registerVens(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  api.get('/orgs/:org/vens', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, unknown>
    const out = (await agentsWithWorkloads(db, org))
      .filter(
        ({ agent, workload }) =>
          (q.status === undefined || agent.status === q.status) &&
          textMatches(workload.hostname, q.hostname, q),
      )
      .map(({ agent, workload }) => venView(org, agent, workload))
    return collection(req, reply, ctx.jobs, org, out)
  })

  /**
   * Unpairs agents: each is told on its next policy request, restores the firewall as asked
   * (`firewall_restore`: default, saved, open or closed) and forgets its credential.
   */
  api.put('/orgs/:org/vens/unpair', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['vens', 'firewall_restore'])
    const mode = c.oneOf(body, 'firewall_restore', '$', RESTORE_MODES) ?? 'default'
    const hrefs = (c.array(body, 'vens', '$', { required: true, max: 1000 }) ?? []).map((x, i) =>
      c.hrefRef(x, `$.vens[${i}]`),
    )
    c.done()
    const ids = hrefs.map((h) => idOf(h ?? ''))
    const found = await agentIdsIn(db, org, ids)
    const missing = hrefs.filter((_h, i) => !found.includes(ids[i] ?? ''))
    if (missing.length > 0) throw invalidOne('invalid_ven', `no such VEN: ${missing.join(', ')}`)
    await db.transaction().execute(async (tx) => {
      await markUnpairing(tx, found, mode)
      await recordEvent(tx, org, {
        event_type: 'agents.unpair',
        created_by: userActor(req),
        resource_changes: found.map((id) =>
          resourceChange('ven', venHref(org, id), 'update', undefined, { firewall_restore: mode }),
        ),
      })
    })
    for (const w of await workloadsOfAgents(db, found)) ctx.policyFeed.kick(w)
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

  api.get('/orgs/:org/vens/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const a = orNotFound(await findAgent(db, org, id), venHref(org, id))
    return json(reply, 200, venView(org, a, await workloadOf(db, org, a.workload_id)))
  })
}
