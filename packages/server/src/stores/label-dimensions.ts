/**
 * Label types (the vendor's label dimensions): one per key of the org's labels, with a display
 * name and how the console shows it. A label's first use of a key makes its type.
 */
import type { Selectable, Updateable } from 'kysely'
import { newUuid } from '../crypto.js'
import { DEFAULT_DIMENSION_NAMES } from '../db/default-label-types.js'
import type { Database } from '../db/schema.js'
import type { Doc } from '../validate.js'
import type { StoredCollection, TextFilter } from './collection.js'
import { countOf, textFilter } from './collection.js'
import type { Db } from './db.js'

type DimensionRecord = Selectable<Database['label_dimensions']>
/** A label type with its display info and authors read. */
export interface DimensionRow extends Omit<
  DimensionRecord,
  'display_info' | 'created_by' | 'updated_by'
> {
  readonly display_info: Doc
  readonly created_by: Doc
  readonly updated_by: Doc
}
export type DimensionColumn =
  'key' | 'display_name' | 'external_data_set' | 'external_data_reference'

const decode = (r: DimensionRecord): DimensionRow => ({
  ...r,
  display_info: JSON.parse(r.display_info) as Doc,
  created_by: JSON.parse(r.created_by) as Doc,
  updated_by: JSON.parse(r.updated_by) as Doc,
})
const dimensionsOf = (db: Db, org: number) =>
  db.selectFrom('label_dimensions').where('org_id', '=', org)

export function dimensionsMatching(
  db: Db,
  org: number,
  filters: readonly TextFilter<DimensionColumn>[],
): StoredCollection<DimensionRow> {
  let query = dimensionsOf(db, org)
  for (const f of filters) query = query.where(textFilter(f))
  return {
    count: () => countOf(query),
    read: async (limit) =>
      (await query.selectAll().orderBy('created_at').orderBy('key').limit(limit).execute()).map(
        decode,
      ),
  }
}

export async function findDimension(
  db: Db,
  org: number,
  id: string,
): Promise<DimensionRow | undefined> {
  const r = await dimensionsOf(db, org).selectAll().where('id', '=', id).executeTakeFirst()
  return r && decode(r)
}

export async function dimensionWithKey(
  db: Db,
  org: number,
  key: string,
): Promise<DimensionRow | undefined> {
  const r = await dimensionsOf(db, org).selectAll().where('key', '=', key).executeTakeFirst()
  return r && decode(r)
}

export interface NewDimension {
  readonly org: number
  readonly key: string
  readonly display_name?: string
  readonly display_info?: Doc
  readonly external_data_set?: string | null
  readonly external_data_reference?: string | null
  readonly by: Doc
  readonly at: string
}

const dimensionValues = (d: NewDimension) => ({
  id: newUuid(),
  org_id: d.org,
  key: d.key,
  display_name: d.display_name ?? DEFAULT_DIMENSION_NAMES[d.key] ?? d.key,
  display_info: JSON.stringify(d.display_info ?? {}),
  external_data_set: d.external_data_set ?? null,
  external_data_reference: d.external_data_reference ?? null,
  created_at: d.at,
  updated_at: d.at,
  created_by: JSON.stringify(d.by),
  updated_by: JSON.stringify(d.by),
})

export async function insertDimension(db: Db, d: NewDimension): Promise<DimensionRow> {
  return decode(
    await db
      .insertInto('label_dimensions')
      .values(dimensionValues(d))
      .returningAll()
      .executeTakeFirstOrThrow(),
  )
}

/**
 * The label type of a key, made (by `by`, at `at`) if the org has none yet. Requests that race
 * to make the same one (the first labels of a new key, posted at once) all go on: one makes it.
 */
export async function ensureDimension(
  db: Db,
  org: number,
  key: string,
  by: Doc,
  at: string,
): Promise<void> {
  if (await dimensionWithKey(db, org, key)) return
  await db
    .insertInto('label_dimensions')
    .values(dimensionValues({ org, key, by, at }))
    .onConflict((oc) => oc.columns(['org_id', 'key']).doNothing())
    .execute()
}

export async function updateDimension(
  db: Db,
  id: string,
  fields: Omit<Updateable<Database['label_dimensions']>, 'display_info' | 'updated_by'> & {
    display_info?: Doc
    updated_by: Doc
  },
): Promise<DimensionRow> {
  const { display_info, updated_by, ...rest } = fields
  return decode(
    await db
      .updateTable('label_dimensions')
      .set({
        ...rest,
        ...(display_info && { display_info: JSON.stringify(display_info) }),
        updated_by: JSON.stringify(updated_by),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow(),
  )
}

export async function deleteDimension(db: Db, id: string): Promise<void> {
  await db.deleteFrom('label_dimensions').where('id', '=', id).execute()
}
