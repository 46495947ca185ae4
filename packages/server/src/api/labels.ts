import type { FastifyInstance } from 'fastify'
import type { Selectable } from 'kysely'
import type { AppContext } from '../context.js'
import { invalidOne, notFound } from '../errors.js'
import type { StoredCollection } from '../http.js'
import { bodyObject, collection, countOf, json, orgOf, textFilter, userActor } from '../http.js'
import type { Database } from '../db/schema.js'
import { now, recordEvent, resourceChange } from '../store.js'
import { Checker } from '../validate.js'
import { labelHref } from '../hrefs.js'

type LabelRow = Selectable<Database['labels']>

export function labelView(r: LabelRow) {
  return {
    href: labelHref(r.org_id, r.id),
    key: r.key,
    value: r.value,
    external_data_set: r.external_data_set,
    external_data_reference: r.external_data_reference,
    created_at: r.created_at,
    updated_at: r.updated_at,
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
    const row = await db
      .selectFrom('labels')
      .selectAll()
      .where('org_id', '=', org)
      .where('id', '=', Number(id))
      .executeTakeFirst()
    if (!row || !/^\d+$/.test(id)) throw notFound(labelHref(org, Number(id)))
    return row
  }

  api.get('/orgs/:org/labels', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, unknown>
    let query = db.selectFrom('labels').where('org_id', '=', org)
    if (q.key !== undefined) query = query.where(textFilter('key', q.key, { match_type: 'exact' }))
    for (const column of ['value', 'external_data_set', 'external_data_reference'] as const)
      if (q[column] !== undefined) query = query.where(textFilter(column, q[column], q))
    const out: StoredCollection<LabelRow> = {
      count: () => countOf(query),
      read: (limit) => query.selectAll().orderBy('id').limit(limit).execute(),
    }
    return collection(req, reply, ctx.jobs, org, out, (page) => page.map(labelView))
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
      const dup = await tx
        .selectFrom('labels')
        .select('id')
        .where('org_id', '=', org)
        .where('key', '=', key ?? '')
        .where('value', '=', value ?? '')
        .executeTakeFirst()
      if (dup)
        throw invalidOne(
          'label_key_value_exists',
          `a label ${key}=${value} exists already: ${labelHref(org, dup.id)}`,
        )
      const row = await tx
        .insertInto('labels')
        .values({
          org_id: org,
          key: key ?? '',
          value: value ?? '',
          external_data_set: (body.external_data_set as string) ?? null,
          external_data_reference: (body.external_data_reference as string) ?? null,
          created_at: t,
          updated_at: t,
        })
        .returningAll()
        .executeTakeFirstOrThrow()
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
      const after = await tx
        .updateTable('labels')
        .set({
          ...(body.value !== undefined && { value: body.value as string }),
          ...(body.external_data_set !== undefined && {
            external_data_set: body.external_data_set as string,
          }),
          ...(body.external_data_reference !== undefined && {
            external_data_reference: body.external_data_reference as string,
          }),
          updated_at: now(),
        })
        .where('id', '=', before.id)
        .returningAll()
        .executeTakeFirstOrThrow()
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
    const usedBy = await ctx.hostPolicies.labelUsage(org, href)
    if (usedBy.length > 0)
      throw invalidOne(
        'label_in_use',
        `label ${href} is in use by ${usedBy.slice(0, 3).join(', ')}${usedBy.length > 3 ? ' and more' : ''}; remove those uses first`,
      )
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('labels').where('id', '=', before.id).execute()
      await recordEvent(tx, org, {
        event_type: 'label.delete',
        created_by: userActor(req),
        resource_changes: [resourceChange('label', href, 'delete', labelView(before), undefined)],
      })
    })
    return reply.code(204).send()
  })
}
