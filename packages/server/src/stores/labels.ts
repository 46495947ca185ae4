/** Labels: key and value pairs that workloads carry and policy scopes and actors name. */
import type { Selectable, Updateable } from 'kysely'
import type { Database } from '../db/schema.js'
import { draftObjectHref, labelHref, workloadHref } from '../hrefs.js'
import type { StoredCollection, TextFilter } from './collection.js'
import { countOf, textFilter } from './collection.js'
import type { Db } from './db.js'
import { objectsMentioning } from './policy-objects.js'
import { workloadsLabelled } from './workloads.js'

export type LabelRow = Selectable<Database['labels']>
export type LabelColumn = 'key' | 'value' | 'external_data_set' | 'external_data_reference'

const labelsOf = (db: Db, org: number) => db.selectFrom('labels').where('org_id', '=', org)

/** Every label of the org by its href. */
export async function labelsByHref(
  db: Db,
  org: number,
): Promise<Map<string, { key: string; value: string }>> {
  const rows = await labelsOf(db, org).selectAll().execute()
  return new Map(rows.map((l) => [labelHref(org, l.id), { key: l.key, value: l.value }]))
}

/** The org's labels that pass every filter, by id. */
export function labelsMatching(
  db: Db,
  org: number,
  filters: readonly TextFilter<LabelColumn>[],
): StoredCollection<LabelRow> {
  let query = labelsOf(db, org)
  for (const f of filters) query = query.where(textFilter(f))
  return {
    count: () => countOf(query),
    read: (limit) => query.selectAll().orderBy('id').limit(limit).execute(),
  }
}

/** The org's labels (ids and keys), of one key when asked. */
export async function labelsWithKey(db: Db, org: number, key?: string) {
  let query = labelsOf(db, org).select(['id', 'key'])
  if (key !== undefined) query = query.where('key', '=', key)
  return query.execute()
}

export async function findLabel(db: Db, org: number, id: number): Promise<LabelRow | undefined> {
  return labelsOf(db, org).selectAll().where('id', '=', id).executeTakeFirst()
}

/** The id of the org's label with this key and value, if there is one. */
export async function labelWith(
  db: Db,
  org: number,
  key: string,
  value: string,
): Promise<number | undefined> {
  const row = await labelsOf(db, org)
    .select('id')
    .where('key', '=', key)
    .where('value', '=', value)
    .executeTakeFirst()
  return row?.id
}

/** The label made, or undefined when the org has one with that key and value (maybe just made). */
export async function insertLabel(
  db: Db,
  values: Omit<LabelRow, 'id'>,
): Promise<LabelRow | undefined> {
  return db
    .insertInto('labels')
    .values(values)
    .onConflict((oc) => oc.columns(['org_id', 'key', 'value']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function updateLabel(
  db: Db,
  id: number,
  fields: Updateable<Database['labels']>,
): Promise<LabelRow> {
  return db
    .updateTable('labels')
    .set(fields)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function deleteLabel(db: Db, id: number): Promise<void> {
  await db.deleteFrom('labels').where('id', '=', id).execute()
}

/** What uses a label: workloads carrying it and policy objects naming it (draft or active). */
export async function labelUsage(db: Db, org: number, href: string): Promise<string[]> {
  const workloads = await workloadsLabelled(db, org, href)
  const objects = await objectsMentioning(db, org, JSON.stringify(href))
  return [
    ...workloads.map((id) => workloadHref(org, id)),
    ...objects.map((o) => draftObjectHref(org, o.type, o.id)),
  ]
}
