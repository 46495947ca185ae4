import type { FastifyInstance } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { invalidOne, orNotFound } from '../errors.js'
import { labelDimensionHref, labelHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { recordEvent } from '../stores/events.js'
import type { DimensionColumn, DimensionRow } from '../stores/label-dimensions.js'
import {
  deleteDimension,
  dimensionsMatching,
  dimensionWithKey,
  findDimension,
  insertDimension,
  updateDimension,
} from '../stores/label-dimensions.js'
import { labelsWithKey } from '../stores/labels.js'
import { policyObjects } from '../stores/policy-objects.js'
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'

const DISPLAY_INFO = [
  'initial',
  'icon',
  'background_color',
  'foreground_color',
  'sort_ordinal',
  'display_name_plural',
] as const

/** Checks a label type's body; `key` only on create (a type's key never changes). */
function checkDimension(body: Doc, current: DimensionRow | undefined) {
  const c = new Checker()
  c.only(body, '$', [
    'key',
    'display_name',
    'display_info',
    'external_data_set',
    'external_data_reference',
  ])
  const key = c.string(body, 'key', '$', { required: !current, max: 64 })
  if (key !== undefined && !/^[A-Za-z0-9_.-]+$/.test(key))
    c.fail('$.key', 'may hold letters, digits, ".", "_" and "-" only')
  // Clients send a type back as read: its own key (or none) is fine, another is not.
  if (current && key !== undefined && key !== '' && key !== current.key)
    c.fail('$.key', `the key of a label type cannot change (it is "${current.key}")`)
  const name = c.string(body, 'display_name', '$', { max: 255 })
  c.string(body, 'external_data_set', '$', { max: 255, nullable: true })
  c.string(body, 'external_data_reference', '$', { max: 255, nullable: true })
  let info: Doc | undefined
  if (body.display_info !== undefined && body.display_info !== null) {
    const o = c.object(body.display_info, '$.display_info')
    if (o) {
      c.only(o, '$.display_info', DISPLAY_INFO)
      const initial = c.string(o, 'initial', '$.display_info', { max: 2, nullable: true })
      for (const k of ['icon', 'display_name_plural'])
        c.string(o, k, '$.display_info', { max: 255, nullable: true })
      for (const k of ['background_color', 'foreground_color']) {
        const v = c.string(o, k, '$.display_info', { max: 7, nullable: true })
        if (v && !/^#[0-9a-fA-F]{6}$/.test(v))
          c.fail(`$.display_info.${k}`, 'must be a colour as #rrggbb')
      }
      c.int(o, 'sort_ordinal', '$.display_info', { min: 0, nullable: true })
      if (initial === '') c.fail('$.display_info.initial', 'must have 1 or 2 characters')
      info = o
    }
  }
  c.done()
  return {
    key,
    ...(name !== undefined && { display_name: name }),
    ...(info && { display_info: info }),
    ...(body.external_data_set !== undefined && {
      external_data_set: body.external_data_set as string | null,
    }),
    ...(body.external_data_reference !== undefined && {
      external_data_reference: body.external_data_reference as string | null,
    }),
  }
}

function dimensionView(d: DimensionRow, usage: { labels: boolean; label_groups: boolean }) {
  const info = d.display_info
  return {
    href: labelDimensionHref(d.org_id, d.id),
    key: d.key,
    display_name: d.display_name,
    display_info: {
      initial: (info.initial as string | undefined) ?? d.display_name.slice(0, 1).toUpperCase(),
      icon: info.icon ?? null,
      background_color: info.background_color ?? null,
      foreground_color: info.foreground_color ?? null,
      sort_ordinal: info.sort_ordinal ?? null,
      display_name_plural: info.display_name_plural ?? null,
    },
    usage,
    caps: ['write'],
    external_data_set: d.external_data_set,
    external_data_reference: d.external_data_reference,
    deleted: false,
    created_at: d.created_at,
    updated_at: d.updated_at,
    created_by: d.created_by,
    updated_by: d.updated_by,
  }
}

/** Label types (`label_dimensions`): a key, its display name, and whether labels use it. */
export function registerLabelDimensions(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = async (org: number, id: string) =>
    orNotFound(await findDimension(db, org, id), labelDimensionHref(org, id))
  /** Which keys labels and label groups (draft or active) use. */
  const keysInUse = async (org: number) => {
    const groups = await policyObjects(db, org, 'label_groups')
    const labels = await labelsWithKey(db, org)
    return {
      labels: new Set(labels.map((l) => l.key)),
      groups: new Set(groups.flatMap((g) => [g.draft?.key, g.active?.key])),
    }
  }
  const viewsOf = async (org: number, rows: DimensionRow[]) => {
    const used = await keysInUse(org)
    return rows.map((d) =>
      dimensionView(d, { labels: used.labels.has(d.key), label_groups: used.groups.has(d.key) }),
    )
  }

  api.get('/orgs/:org/label_dimensions', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const columns: DimensionColumn[] = [
      'key',
      'display_name',
      'external_data_set',
      'external_data_reference',
    ]
    const rows = dimensionsMatching(
      db,
      org,
      columns.flatMap((column) => f.textFilter(column, column) ?? []),
    )
    return collection(req, reply, ctx.jobs, org, rows, (page) => viewsOf(org, page))
  })

  api.get('/orgs/:org/label_dimensions/:id', async (req, reply) => {
    const org = orgOf(req)
    const d = await find(org, (req.params as { id: string }).id)
    return json(reply, 200, (await viewsOf(org, [d]))[0])
  })

  api.post('/orgs/:org/label_dimensions', async (req, reply) => {
    const org = orgOf(req)
    const { key, ...fields } = checkDimension(bodyObject(req), undefined)
    const row = await db.transaction().execute(async (tx) => {
      const dup = await dimensionWithKey(tx, org, key ?? '')
      if (dup)
        throw invalidOne(
          'label_dimension_key_exists',
          `a label type with key "${key}" exists already: ${labelDimensionHref(org, dup.id)}`,
        )
      const d = await insertDimension(tx, {
        org,
        key: key ?? '',
        ...fields,
        by: userActor(req).user,
        at: now(),
      })
      await recordEvent(tx, org, {
        event_type: 'label_dimension.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('label_dimension', labelDimensionHref(org, d.id), 'create', undefined, {
            key: d.key,
            display_name: d.display_name,
          }),
        ],
      })
      return d
    })
    return json(reply, 201, (await viewsOf(org, [row]))[0])
  })

  api.put('/orgs/:org/label_dimensions/:id', async (req, reply) => {
    const org = orgOf(req)
    const before = await find(org, (req.params as { id: string }).id)
    const { key: _key, ...fields } = checkDimension(bodyObject(req), before)
    await db.transaction().execute(async (tx) => {
      const after = await updateDimension(tx, before.id, {
        ...fields,
        ...(fields.display_info && {
          display_info: { ...before.display_info, ...fields.display_info },
        }),
        updated_at: now(),
        updated_by: userActor(req).user,
      })
      await recordEvent(tx, org, {
        event_type: 'label_dimension.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'label_dimension',
            labelDimensionHref(org, before.id),
            'update',
            { display_name: before.display_name, display_info: before.display_info },
            { display_name: after.display_name, display_info: after.display_info },
          ),
        ],
      })
    })
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/label_dimensions/:id', async (req, reply) => {
    const org = orgOf(req)
    const before = await find(org, (req.params as { id: string }).id)
    const labels = (await labelsWithKey(db, org, before.key)).map((l) => labelHref(org, l.id))
    if (labels.length > 0)
      throw invalidOne(
        'label_dimension_in_use',
        `label type "${before.key}" has labels: ${labels.slice(0, 3).join(', ')}${labels.length > 3 ? ` and ${labels.length - 3} more` : ''}; delete them first`,
      )
    await db.transaction().execute(async (tx) => {
      await deleteDimension(tx, before.id)
      await recordEvent(tx, org, {
        event_type: 'label_dimension.delete',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('label_dimension', labelDimensionHref(org, before.id), 'delete', {
            key: before.key,
          }),
        ],
      })
    })
    return reply.code(204).send()
  })
}
