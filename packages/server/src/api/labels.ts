import type { FastifyInstance } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { invalidOne, notFound } from '../errors.js'
import { labelHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { usageOf } from '../labels/label-usage.js'
import { usageSources } from '../labels/usage-sources.js'
import { filtersOf } from '../query/query-filters.js'
import { ensureDimension } from '../stores/label-dimensions.js'
import { recordEvent } from '../stores/events.js'
import type { LabelColumn, LabelRow } from '../stores/labels.js'
import {
  deleteLabel,
  findLabel,
  insertLabel,
  labelsMatching,
  labelUsage,
  labelWith,
  updateLabel,
} from '../stores/labels.js'
import { Checker } from '../validate.js'

function labelView(r: LabelRow) {
  return {
    href: labelHref(r.org_id, r.id),
    key: r.key,
    value: r.value,
    external_data_set: r.external_data_set,
    external_data_reference: r.external_data_reference,
    created_at: r.created_at,
    updated_at: r.updated_at,
    deleted: false,
  }
}

function checkLabel(body: Record<string, unknown>, partial: boolean) {
  const c = new Checker()
  c.only(body, '$', ['key', 'value', 'external_data_set', 'external_data_reference'])
  const key = c.string(body, 'key', '$', { required: !partial, max: 64 })
  const value = c.string(body, 'value', '$', { required: !partial, max: 255 })
  c.string(body, 'external_data_set', '$', { max: 255, nullable: true })
  c.string(body, 'external_data_reference', '$', { max: 255, nullable: true })
  if (key !== undefined && !/^[A-Za-z0-9_.-]+$/.test(key))
    c.fail('$.key', 'may hold letters, digits, ".", "_" and "-" only')
  for (const k of ['key', 'value'] as const)
    if (body[k] === null) c.fail(`$.${k}`, 'cannot be null')
  c.done()
  return { key, value }
}

export function registerLabels(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = async (org: number, id: string) => {
    const row = await findLabel(db, org, Number(id))
    if (!row || !/^\d+$/.test(id)) throw notFound(labelHref(org, Number(id)))
    return row
  }

  api.get('/orgs/:org/labels', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const columns: LabelColumn[] = ['key', 'value', 'external_data_set', 'external_data_reference']
    const labels = labelsMatching(
      db,
      org,
      columns.flatMap((column) => f.textFilter(column, column) ?? []),
    )
    return collection(req, reply, ctx.jobs, org, labels, async (page) => {
      if (f.bool('usage') !== true) return page.map(labelView)
      const src = await usageSources(db, org)
      return page.map((l) => ({ ...labelView(l), usage: usageOf(labelHref(org, l.id), src) }))
    })
  })

  api.get('/orgs/:org/labels/:id', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, labelView(await find(org, (req.params as { id: string }).id)))
  })

  api.post('/orgs/:org/labels', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const { key, value } = checkLabel(body, false)
    const t = now()
    const view = await db.transaction().execute(async (tx) => {
      // A key's first label makes its label type (the vendor wants the type made first).
      await ensureDimension(tx, org, key ?? '', userActor(req).user, t)
      const row = await insertLabel(tx, {
        org_id: org,
        key: key ?? '',
        value: value ?? '',
        external_data_set: (body.external_data_set as string) ?? null,
        external_data_reference: (body.external_data_reference as string) ?? null,
        created_at: t,
        updated_at: t,
      })
      if (row === undefined) {
        const dup = await labelWith(tx, org, key ?? '', value ?? '')
        throw invalidOne(
          'label_key_value_exists',
          `a label ${key}=${value} exists already${dup === undefined ? '' : `: ${labelHref(org, dup)}`}`,
        )
      }
      const v = labelView(row)
      await recordEvent(tx, org, {
        event_type: 'label.create',
        created_by: userActor(req),
        resource_changes: [resourceChange('label', v.href, 'create', undefined, v)],
      })
      return v
    })
    return json(reply, 201, view)
  })

  api.put('/orgs/:org/labels/:id', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    checkLabel(body, true)
    const before = await find(org, (req.params as { id: string }).id)
    if (body.key !== undefined && body.key !== before.key)
      throw invalidOne(
        'label_key_immutable',
        'the key of a label cannot change; create another label',
      )
    await db.transaction().execute(async (tx) => {
      if (typeof body.value === 'string' && body.value !== before.value) {
        const dup = await labelWith(tx, org, before.key, body.value)
        if (dup !== undefined)
          throw invalidOne(
            'label_key_value_exists',
            `a label ${before.key}=${body.value} exists already: ${labelHref(org, dup)}`,
          )
      }
      const after = await updateLabel(tx, before.id, {
        ...(body.value !== undefined && { value: body.value as string }),
        ...(body.external_data_set !== undefined && {
          external_data_set: body.external_data_set as string,
        }),
        ...(body.external_data_reference !== undefined && {
          external_data_reference: body.external_data_reference as string,
        }),
        updated_at: now(),
      })
      await recordEvent(tx, org, {
        event_type: 'label.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'label',
            labelHref(org, before.id),
            'update',
            labelView(before),
            labelView(after),
          ),
        ],
      })
    })
    // A label's value shows in workloads and scopes: agents whose peers it changes are told.
    await ctx.hostPolicies.recompute(org)
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/labels/:id', async (req, reply) => {
    const org = orgOf(req)
    const before = await find(org, (req.params as { id: string }).id)
    const href = labelHref(org, before.id)
    const usedBy = await labelUsage(db, org, href)
    if (usedBy.length > 0)
      throw invalidOne(
        'label_in_use',
        `label ${href} is in use by ${usedBy.slice(0, 3).join(', ')}${usedBy.length > 3 ? ' and more' : ''}; remove those uses first`,
      )
    await db.transaction().execute(async (tx) => {
      await deleteLabel(tx, before.id)
      await recordEvent(tx, org, {
        event_type: 'label.delete',
        created_by: userActor(req),
        resource_changes: [resourceChange('label', href, 'delete', labelView(before), undefined)],
      })
    })
    return reply.code(204).send()
  })
}
