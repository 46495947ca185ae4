import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid } from '../crypto.js'
import { invalidOne, orNotFound } from '../errors.js'
import { idOf, isWorkloadHrefOf, workloadHref } from '../hrefs.js'
import { boolParam, bodyObject, collection, json, orgOf, textMatches, userActor } from '../http.js'
import { agentsOfWorkloads } from '../stores/agents.js'
import { recordEvent } from '../stores/events.js'
import { policyHashes } from '../stores/host-policies.js'
import { labelsByHref } from '../stores/labels.js'
import type { WorkloadRow } from '../stores/workloads.js'
import {
  deleteWorkload,
  findWorkload,
  insertWorkload,
  listWorkloads,
  updateWorkload,
  workloadRecord,
} from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import { isObj } from '../validate.js'
import { checkWorkload } from '../workloads/workload-fields.js'
import { workloadView } from '../workloads/workload-view.js'
import { firewallSettings } from '../host-policy/snapshot-builder.js'

/** The API views of these workloads, with what they need read once for them all. */
async function workloadViews(ctx: AppContext, org: number, rows: WorkloadRow[]): Promise<Doc[]> {
  const ids = rows.map((w) => w.id)
  const agents = await agentsOfWorkloads(ctx.db, org, ids)
  const hashes = await policyHashes(ctx.db, ids)
  const view = {
    labels: await labelsByHref(ctx.db, org),
    settings: await firewallSettings(ctx.db, org),
    agents: new Map(agents.map((a) => [a.workload_id, a])),
    policyHashes: hashes,
  }
  return rows.map((w) => workloadView(org, w, view))
}

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
  const find = async (org: number, id: string) =>
    orNotFound(await findWorkload(db, org, id), workloadHref(org, id))
  const labelsOfOrg = (org: number) => () => labelsByHref(db, org)

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
    return collection(req, reply, ctx.jobs, org, out, (page) => workloadViews(ctx, org, page))
  })

  api.get('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    const w = await find(org, (req.params as { id: string }).id)
    return json(reply, 200, (await workloadViews(ctx, org, [w]))[0])
  })

  const create = async (req: FastifyRequest, org: number, body: Doc) => {
    const fields = await checkWorkload(body, true, false, labelsOfOrg(org))
    const id = newUuid()
    const t = now()
    const row: WorkloadRow = {
      id,
      org_id: org,
      name: fields.name ?? fields.hostname ?? id,
      hostname: fields.hostname ?? fields.name ?? '',
      managed: 0,
      agent_type: 'server',
      os_platform: fields.os_platform ?? 'linux',
      enforcement_mode: fields.enforcement_mode ?? 'idle',
      visibility_level: fields.visibility_level ?? 'flow_summary',
      labels: fields.labels ?? [],
      interfaces: fields.interfaces ?? [],
      external_data_set: fields.external_data_set ?? null,
      external_data_reference: fields.external_data_reference ?? null,
      created_at: t,
      updated_at: t,
    }
    await db.transaction().execute(async (tx) => {
      await insertWorkload(tx, row)
      await recordEvent(tx, org, {
        event_type: 'workload.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'workload',
            workloadHref(org, id),
            'create',
            undefined,
            workloadRecord(row),
          ),
        ],
      })
    })
    return row
  }

  const update = async (req: FastifyRequest, org: number, id: string, body: Doc) => {
    const before = await find(org, id)
    const fields = await checkWorkload(body, false, before.managed === 1, labelsOfOrg(org))
    await db.transaction().execute(async (tx) => {
      const after = await updateWorkload(tx, id, { ...fields, updated_at: now() })
      await recordEvent(tx, org, {
        event_type: 'workload.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'workload',
            workloadHref(org, id),
            'update',
            workloadRecord(before),
            after,
          ),
        ],
      })
    })
  }

  const remove = async (req: FastifyRequest, org: number, id: string) => {
    const before = await find(org, id)
    if (before.managed === 1)
      throw invalidOne(
        'workload_managed',
        `${workloadHref(org, id)} is managed by an agent; unpair it instead`,
      )
    await db.transaction().execute(async (tx) => {
      await deleteWorkload(tx, id)
      await recordEvent(tx, org, {
        event_type: 'workload.delete',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('workload', workloadHref(org, id), 'delete', workloadRecord(before)),
        ],
      })
    })
  }

  api.post('/orgs/:org/workloads', async (req, reply) => {
    const org = orgOf(req)
    const row = await create(req, org, bodyObject(req))
    await ctx.hostPolicies.recompute(org)
    return json(reply, 201, (await workloadViews(ctx, org, [row]))[0])
  })

  api.put('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    await update(req, org, (req.params as { id: string }).id, bodyObject(req))
    // Enforcement mode, labels and addresses apply at once (they are not provisioned).
    await ctx.hostPolicies.recompute(org)
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    await remove(req, org, (req.params as { id: string }).id)
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
            const row = await create(req, org, item)
            results.push({ href: workloadHref(org, row.id), status: 'created' })
            continue
          }
          const href = typeof item.href === 'string' ? item.href : ''
          if (!isWorkloadHrefOf(org, href))
            throw invalidOne('invalid_href', `href ${href} is not a workload of org ${org}`)
          const { href: _h, ...fields } = item
          if (op === 'bulk_update') await update(req, org, idOf(href), fields)
          else await remove(req, org, idOf(href))
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
