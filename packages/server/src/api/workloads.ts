import type { FastifyInstance } from 'fastify'
import type { AppContext } from '../context.js'
import { ApiError, invalidOne } from '../errors.js'
import { idOf, isWorkloadHrefOf, workloadHref } from '../hrefs.js'
import { bodyObject, collection, json, jsonText, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { agentsOfWorkloads } from '../stores/agents.js'
import { writtenOut } from '../stores/address-sets.js'
import { policyHashes, storedPolicy } from '../stores/host-policies.js'
import { listWorkloads } from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
import { workloadMatches } from '../workloads/workload-filters.js'
import { syncStateOf, workloadViews } from '../workloads/workload-view.js'
import {
  createWorkload,
  editWorkload,
  removeWorkload,
  workloadOf,
} from '../workloads/workload-writes.js'

export function registerWorkloads(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  api.get('/orgs/:org/workloads', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const all = await listWorkloads(db, org)
    const managedIds = all.filter((w) => w.managed === 1).map((w) => w.id)
    const agents = new Map(
      (await agentsOfWorkloads(db, org, managedIds)).map((a) => [a.workload_id, a]),
    )
    // The sync state needs each host's policy hash: read only when it is asked about.
    const hashes = f.has('security_policy_sync_state')
      ? await policyHashes(db, managedIds)
      : new Map<string, string>()
    const out = all.filter((w) => {
      const agent = agents.get(w.id)
      const sync = agent && syncStateOf(agent, hashes.get(w.id))
      return workloadMatches(f, org, w, agent, sync)
    })
    // views (agent state, sync state) only for the workloads the page returns
    return collection(req, reply, ctx.jobs, org, out, (page) => workloadViews(db, org, page))
  })

  api.get('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    const w = await workloadOf(db, org, (req.params as { id: string }).id)
    return json(reply, 200, (await workloadViews(db, org, [w]))[0])
  })

  /** Palisade's addition: the host policy this workload's agent is sent, its sets written out. */
  api.get('/orgs/:org/workloads/:id/host_policy', async (req, reply) => {
    const org = orgOf(req)
    const w = await workloadOf(db, org, (req.params as { id: string }).id)
    const stored = await storedPolicy(db, w.id)
    if (!stored)
      throw new ApiError(404, [
        {
          token: 'not_found',
          message: `${workloadHref(org, w.id)} has no host policy: ${w.managed === 1 ? 'it is being computed; try again in a moment' : 'only a workload an agent manages has one'}`,
        },
      ])
    const text = await writtenOut(db, org, stored.text)
    return jsonText(reply, 200, `{"hash":${JSON.stringify(stored.hash)},"policy":${text}}`)
  })

  api.post('/orgs/:org/workloads', async (req, reply) => {
    const org = orgOf(req)
    const row = await createWorkload(db, userActor(req), org, bodyObject(req))
    await ctx.hostPolicies.recompute(org)
    return json(reply, 201, (await workloadViews(db, org, [row]))[0])
  })

  api.put('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    await editWorkload(db, userActor(req), org, (req.params as { id: string }).id, bodyObject(req))
    // Enforcement mode, labels and addresses apply at once (they are not provisioned).
    await ctx.hostPolicies.recompute(org)
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    const force = filtersOf(req).bool('force') === true
    await removeWorkload(db, userActor(req), org, (req.params as { id: string }).id, force)
    await ctx.hostPolicies.recompute(org)
    return reply.code(204).send()
  })

  /** Bulk operations answer per item, so one bad item does not hide the others' results. */
  for (const op of ['bulk_create', 'bulk_update', 'bulk_delete'] as const) {
    api.put(`/orgs/:org/workloads/${op}`, async (req, reply) => {
      const org = orgOf(req)
      const items = req.body
      if (!Array.isArray(items))
        throw invalidOne('input_validation_error', 'the body must be a JSON list of workloads')
      if (items.length > 1000)
        throw invalidOne('too_many_items', 'at most 1,000 workloads per bulk request')
      const results: Doc[] = []
      for (const item of items) {
        try {
          if (!isObj(item))
            throw invalidOne('input_validation_error', 'each item must be a JSON object')
          if (op === 'bulk_create') {
            const row = await createWorkload(db, userActor(req), org, item)
            results.push({ href: workloadHref(org, row.id), status: 'created' })
            continue
          }
          const href = typeof item.href === 'string' ? item.href : ''
          if (!isWorkloadHrefOf(org, href))
            throw invalidOne('invalid_href', `href ${href} is not a workload of org ${org}`)
          const { href: _h, ...fields } = item
          if (op === 'bulk_update') await editWorkload(db, userActor(req), org, idOf(href), fields)
          else await removeWorkload(db, userActor(req), org, idOf(href))
          results.push({ href, status: op === 'bulk_update' ? 'updated' : 'deleted' })
        } catch (e) {
          const issues = (e as { issues?: unknown }).issues ?? [
            { token: 'error', message: (e as Error).message },
          ]
          const first = (issues as { token?: string; message?: string }[])[0]
          // The first problem also at the top, where the Go SDK reads it.
          results.push({
            href: isObj(item) ? (item.href ?? null) : null,
            status: 'validation_failure',
            token: first?.token ?? 'error',
            message: first?.message ?? '',
            errors: issues,
          })
        }
      }
      await ctx.hostPolicies.recompute(org)
      return json(reply, 200, results)
    })
  }
}
