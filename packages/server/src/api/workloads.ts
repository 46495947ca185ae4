import type { FastifyInstance } from 'fastify'
import type { AppContext } from '../context.js'
import { invalidOne } from '../errors.js'
import { idOf, isWorkloadHrefOf, workloadHref } from '../hrefs.js'
import { boolParam, bodyObject, collection, json, orgOf, textMatches, userActor } from '../http.js'
import { listWorkloads } from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
import { workloadViews } from '../workloads/workload-view.js'
import {
  createWorkload,
  editWorkload,
  removeWorkload,
  workloadOf,
} from '../workloads/workload-writes.js'

/** `labels`: a JSON list of lists of label hrefs (any list whose labels all match). */
function labelsFilter(q: Record<string, unknown>): string[][] | undefined {
  if (q.labels === undefined) return undefined
  try {
    const wanted = JSON.parse(typeof q.labels === 'string' ? q.labels : '') as unknown
    if (!Array.isArray(wanted) || !wanted.every((g) => Array.isArray(g))) throw new Error('shape')
    return wanted as string[][]
  } catch {
    throw invalidOne(
      'invalid_labels_filter',
      'labels must be a JSON list of lists of label hrefs, e.g. [["/orgs/1/labels/1"]]',
    )
  }
}

export function registerWorkloads(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  api.get('/orgs/:org/workloads', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, unknown>
    const wanted = labelsFilter(q)
    const managed = boolParam(q.managed)
    const out = (await listWorkloads(db, org)).filter(
      (w) =>
        textMatches(w.name, q.name, q) &&
        textMatches(w.hostname, q.hostname, q) &&
        textMatches(w.external_data_set, q.external_data_set, q) &&
        textMatches(w.external_data_reference, q.external_data_reference, q) &&
        (q.enforcement_mode === undefined || w.enforcement_mode === q.enforcement_mode) &&
        (q.visibility_level === undefined || w.visibility_level === q.visibility_level) &&
        (managed === undefined || (w.managed === 1) === managed) &&
        (!wanted || wanted.some((group) => group.every((h) => w.labels.includes(h)))) &&
        (q.ip_address === undefined || w.interfaces.some((i) => i.address === q.ip_address)),
    )
    // views (agent state, sync state) only for the workloads the page returns
    return collection(req, reply, ctx.jobs, org, out, (page) => workloadViews(db, org, page))
  })

  api.get('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    const w = await workloadOf(db, org, (req.params as { id: string }).id)
    return json(reply, 200, (await workloadViews(db, org, [w]))[0])
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
    await removeWorkload(db, userActor(req), org, (req.params as { id: string }).id)
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
          results.push({
            href: isObj(item) ? (item.href ?? null) : null,
            status: 'validation_failure',
            errors: issues,
          })
        }
      }
      await ctx.hostPolicies.recompute(org)
      return json(reply, 200, results)
    })
  }
}
