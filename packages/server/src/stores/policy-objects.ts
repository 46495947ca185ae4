/**
 * Provisionable policy objects: a draft and an active copy in one row. Writes go to the draft;
 * provisioning copies drafts to active (see stores/versions.ts for what it records). A delete of
 * a provisioned object is pending (`draft_deleted`) until the next provision. The copies are
 * read here and nowhere else.
 */
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { PolicyType } from '../policy/types.js'
import type { Doc } from '../validate.js'
import type { Db } from './db.js'

type ObjectRecord = Selectable<Database['policy_objects']>
/** A policy object with its draft and active copies read (null: none). */
export interface PolicyObjectRow extends Omit<ObjectRecord, 'type' | 'draft' | 'active'> {
  readonly type: PolicyType
  readonly draft: Doc | null
  readonly active: Doc | null
}

const readDoc = (text: string | null) => (text === null ? null : (JSON.parse(text) as Doc))
/** The org's policy objects. */
const objectsOf = (db: Db, org: number) => db.selectFrom('policy_objects').where('org_id', '=', org)

const decode = (r: ObjectRecord): PolicyObjectRow => ({
  ...r,
  type: r.type as PolicyType,
  draft: readDoc(r.draft),
  active: readDoc(r.active),
})
const writeDoc = (doc: Doc | null) => (doc === null ? null : JSON.stringify(doc))

/** The org's policy objects, of one type or all, in the store's order. */
export async function policyObjects(
  db: Db,
  org: number,
  type?: PolicyType,
): Promise<PolicyObjectRow[]> {
  let query = objectsOf(db, org).selectAll()
  if (type) query = query.where('type', '=', type)
  return (await query.execute()).map(decode)
}

export async function findObject(
  db: Db,
  org: number,
  type: PolicyType,
  id: string,
): Promise<PolicyObjectRow | undefined> {
  const r = await objectsOf(db, org)
    .selectAll()
    .where('type', '=', type)
    .where('id', '=', id)
    .executeTakeFirst()
  return r && decode(r)
}

/** Which objects the org has, without their copies: type, id and the pending-delete mark. */
export async function objectKeys(db: Db, org: number) {
  const rows = await objectsOf(db, org).select(['type', 'id', 'draft_deleted']).execute()
  return rows.map((r) => ({ ...r, type: r.type as PolicyType }))
}

/**
 * The policy as one side holds it: `active` (what agents enforce) or `draft` (what a provision
 * of everything would make it). Only that side's copies are read.
 */
export async function policyOn(
  db: Db,
  org: number,
  side: 'active' | 'draft',
): Promise<{ type: PolicyType; id: string; doc: Doc }[]> {
  const rows = await objectsOf(db, org)
    .select(['type', 'id', 'active', 'draft', 'draft_deleted'])
    .execute()
  return rows.flatMap((o) => {
    const text = side === 'active' ? o.active : o.draft_deleted ? null : (o.draft ?? o.active)
    return text === null
      ? []
      : [{ type: o.type as PolicyType, id: o.id, doc: JSON.parse(text) as Doc }]
  })
}

/** The objects whose draft or active copy holds this text (an href, quoted) anywhere. */
export async function objectsMentioning(
  db: Db,
  org: number,
  text: string,
): Promise<{ type: PolicyType; id: string }[]> {
  const rows = await objectsOf(db, org).select(['type', 'id', 'draft', 'active']).execute()
  return rows
    .filter((o) => (o.draft ?? '').includes(text) || (o.active ?? '').includes(text))
    .map((o) => ({ type: o.type as PolicyType, id: o.id }))
}

/** The id the next object of a type gets: one more than the highest. */
export async function nextObjectId(db: Db, org: number, type: PolicyType): Promise<string> {
  const ids = await objectsOf(db, org).select('id').where('type', '=', type).execute()
  return String(ids.reduce((m, r) => Math.max(m, Number(r.id)), 0) + 1)
}

export async function insertObject(
  db: Db,
  o: Pick<PolicyObjectRow, 'org_id' | 'type' | 'id' | 'draft' | 'active' | 'updated_at'>,
): Promise<void> {
  await db
    .insertInto('policy_objects')
    .values({ ...o, draft: writeDoc(o.draft), active: writeDoc(o.active), draft_deleted: 0 })
    .execute()
}

type Key = Pick<PolicyObjectRow, 'org_id' | 'type' | 'id'>

async function setColumns(
  db: Db,
  { org_id, type, id }: Key,
  fields: Partial<Pick<ObjectRecord, 'draft' | 'active' | 'draft_deleted'>>,
): Promise<void> {
  await db
    .updateTable('policy_objects')
    .set(fields)
    .where('org_id', '=', org_id)
    .where('type', '=', type)
    .where('id', '=', id)
    .execute()
}

export const saveDraft = (db: Db, key: Key, draft: Doc) =>
  setColumns(db, key, { draft: writeDoc(draft) })

/** Sets an object's draft, cancelling a pending delete (a revert, a restore). */
export const setDraft = (db: Db, key: Key, draft: Doc) =>
  setColumns(db, key, { draft: writeDoc(draft), draft_deleted: 0 })

/** Marks a provisioned object deleted in the draft; the next provision deletes it. */
export const markDeleted = (db: Db, key: Key) => setColumns(db, key, { draft_deleted: 1 })

/** Provisions an object: its draft becomes its active copy. */
export const activateDraft = (db: Db, o: Key & Pick<PolicyObjectRow, 'draft'>) =>
  setColumns(db, o, { active: writeDoc(o.draft) })

export async function deleteObject(db: Db, { org_id, type, id }: Key): Promise<void> {
  await db
    .deleteFrom('policy_objects')
    .where('org_id', '=', org_id)
    .where('type', '=', type)
    .where('id', '=', id)
    .execute()
}
