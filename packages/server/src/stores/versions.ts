/**
 * Policy versions: each provision records one, immutable, with the whole active policy as it
 * became (its snapshot), what changed (object counts), and later how many hosts it changed.
 */
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { PolicyType } from '../policy/types.js'
import type { Doc } from '../validate.js'
import type { Db } from './db.js'

/** The active policy a version made: each type's objects, with their ids. */
export type VersionSnapshot = Partial<Record<PolicyType, { id: string; doc: Doc }[]>>

/** The columns a policy version shows (its snapshot stays in the store). */
const VERSION_COLUMNS = [
  'org_id',
  'version',
  'commit_message',
  'created_at',
  'created_by',
  'object_counts',
  'workloads_affected',
] as const
type VersionRecord = Pick<Selectable<Database['policy_versions']>, (typeof VERSION_COLUMNS)[number]>
/** A version with its author and counts read. */
export interface VersionRow extends Omit<VersionRecord, 'created_by' | 'object_counts'> {
  readonly created_by: Doc
  readonly object_counts: Record<string, number>
}

const versionsOf = (db: Db, org: number) =>
  db.selectFrom('policy_versions').where('org_id', '=', org)
/** One version of the org. */
const versionOf = (db: Db, org: number, version: number) =>
  versionsOf(db, org).where('version', '=', version)

const decode = (r: VersionRecord): VersionRow => ({
  ...r,
  created_by: JSON.parse(r.created_by) as Doc,
  object_counts: JSON.parse(r.object_counts) as Record<string, number>,
})

/** The newest version of the org (of any org without one), 0 before the first provision. */
export async function latestVersion(db: Db, org?: number): Promise<number> {
  let query = db.selectFrom('policy_versions').select('version')
  if (org !== undefined) query = query.where('org_id', '=', org)
  const last = await query.orderBy('version', 'desc').limit(1).executeTakeFirst()
  return last?.version ?? 0
}

/** The org's versions, newest first. */
export async function listVersions(db: Db, org: number): Promise<VersionRow[]> {
  const rows = await versionsOf(db, org)
    .select(VERSION_COLUMNS)
    .orderBy('version', 'desc')
    .execute()
  return rows.map(decode)
}

export async function findVersion(
  db: Db,
  org: number,
  version: number,
): Promise<VersionRow | undefined> {
  const row = await versionOf(db, org, version).select(VERSION_COLUMNS).executeTakeFirst()
  return row && decode(row)
}

/** The active policy a version made. */
export async function versionSnapshot(
  db: Db,
  org: number,
  version: number,
): Promise<VersionSnapshot | undefined> {
  const v = await versionOf(db, org, version).select('snapshot').executeTakeFirst()
  return v && (JSON.parse(v.snapshot) as VersionSnapshot)
}

/** One object a provision changed, as `modified_objects` lists it. */
export interface ModifiedObject {
  readonly href: string
  readonly object_type: string
  readonly update_type: 'create' | 'update' | 'delete'
  readonly name: string | null
  readonly updated_at: string
  readonly updated_by: { readonly href: string } | null
}

/** What a version changed, as its provision recorded it; null for versions made before. */
export async function versionModified(
  db: Db,
  org: number,
  version: number,
): Promise<ModifiedObject[] | null | undefined> {
  const v = await versionOf(db, org, version).select('modified').executeTakeFirst()
  if (!v) return undefined
  return v.modified === null ? null : (JSON.parse(v.modified) as ModifiedObject[])
}

export async function insertVersion(
  db: Db,
  v: Omit<VersionRow, 'workloads_affected'> & {
    readonly snapshot: VersionSnapshot
    readonly modified: readonly ModifiedObject[]
  },
): Promise<void> {
  await db
    .insertInto('policy_versions')
    .values({
      org_id: v.org_id,
      version: v.version,
      commit_message: v.commit_message,
      created_at: v.created_at,
      created_by: JSON.stringify(v.created_by),
      snapshot: JSON.stringify(v.snapshot),
      object_counts: JSON.stringify(v.object_counts),
      workloads_affected: 0,
      modified: JSON.stringify(v.modified),
    })
    .execute()
}

/** Records how many hosts' policies a version changed, once they are computed. */
export async function setWorkloadsAffected(
  db: Db,
  org: number,
  version: number,
  n: number,
): Promise<void> {
  await db
    .updateTable('policy_versions')
    .set({ workloads_affected: n })
    .where('org_id', '=', org)
    .where('version', '=', version)
    .execute()
}
