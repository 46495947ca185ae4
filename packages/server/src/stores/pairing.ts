/**
 * Pairing profiles (what a newly activated agent's workload gets) and their activation codes,
 * kept only as hashes, with their uses left and expiry.
 */
import type { Selectable, Updateable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Db } from './db.js'

type ProfileRecord = Selectable<Database['pairing_profiles']>
/** A pairing profile with its labels (hrefs), lock flags and allowed ranges read. */
export interface ProfileRow extends Omit<ProfileRecord, 'labels' | 'locks' | 'allowed_ip_ranges'> {
  readonly labels: string[]
  readonly locks: Record<string, boolean>
  /** The CIDRs its agents may report addresses in; null: any. */
  readonly allowed_ip_ranges: string[] | null
}
type ProfileFields = Omit<
  Updateable<Database['pairing_profiles']>,
  'labels' | 'locks' | 'allowed_ip_ranges'
> & {
  readonly labels?: readonly string[]
  readonly locks?: Record<string, boolean>
  readonly allowed_ip_ranges?: readonly string[] | null
}
export type PairingKeyRow = Selectable<Database['pairing_keys']>

const decode = (r: ProfileRecord): ProfileRow => ({
  ...r,
  labels: JSON.parse(r.labels) as string[],
  locks: JSON.parse(r.locks) as Record<string, boolean>,
  allowed_ip_ranges:
    r.allowed_ip_ranges === null ? null : (JSON.parse(r.allowed_ip_ranges) as string[]),
})
const encode = <F extends ProfileFields>({ labels, locks, allowed_ip_ranges, ...rest }: F) => ({
  ...rest,
  ...(labels && { labels: JSON.stringify(labels) }),
  ...(locks && { locks: JSON.stringify(locks) }),
  ...(allowed_ip_ranges !== undefined && {
    allowed_ip_ranges: allowed_ip_ranges && JSON.stringify(allowed_ip_ranges),
  }),
})

export async function listProfiles(db: Db, org: number): Promise<ProfileRow[]> {
  const rows = await db
    .selectFrom('pairing_profiles')
    .selectAll()
    .where('org_id', '=', org)
    .orderBy('id')
    .execute()
  return rows.map(decode)
}

export async function findProfile(
  db: Db,
  org: number,
  id: number,
): Promise<ProfileRow | undefined> {
  const r = await db
    .selectFrom('pairing_profiles')
    .selectAll()
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return r && decode(r)
}

/** The profile an activation code was made from (a code's profile always exists). */
export async function profileOfKey(db: Db, key: PairingKeyRow): Promise<ProfileRow> {
  return decode(
    await db
      .selectFrom('pairing_profiles')
      .selectAll()
      .where('id', '=', key.profile_id)
      .executeTakeFirstOrThrow(),
  )
}

export async function insertProfile(
  db: Db,
  p: Omit<ProfileRow, 'id' | 'allowed_ip_ranges'> & Partial<Pick<ProfileRow, 'allowed_ip_ranges'>>,
): Promise<ProfileRow> {
  return decode(
    await db
      .insertInto('pairing_profiles')
      .values({
        ...p,
        labels: JSON.stringify(p.labels),
        locks: JSON.stringify(p.locks),
        allowed_ip_ranges: p.allowed_ip_ranges ? JSON.stringify(p.allowed_ip_ranges) : null,
      })
      .returningAll()
      .executeTakeFirstOrThrow(),
  )
}

export async function updateProfile(
  db: Db,
  id: number,
  fields: ProfileFields,
): Promise<ProfileRow> {
  return decode(
    await db
      .updateTable('pairing_profiles')
      .set(encode(fields))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow(),
  )
}

/** Deletes a profile and the activation codes made from it. */
export async function deleteProfile(db: Db, id: number): Promise<void> {
  await db.deleteFrom('pairing_keys').where('profile_id', '=', id).execute()
  await db.deleteFrom('pairing_profiles').where('id', '=', id).execute()
}

export async function insertPairingKey(db: Db, key: PairingKeyRow): Promise<void> {
  await db.insertInto('pairing_keys').values(key).execute()
}

/** The activation code with this hash, if there is one. */
export async function findPairingKey(db: Db, codeHash: string): Promise<PairingKeyRow | undefined> {
  return db
    .selectFrom('pairing_keys')
    .selectAll()
    .where('code_hash', '=', codeHash)
    .executeTakeFirst()
}

/**
 * Counts one use of a code, if its uses are limited: false when none is left. One statement
 * that decrements only a positive count, so concurrent activations cannot both take the last
 * use (a read then a write would let them: each reads 1).
 */
export async function useKey(db: Db, key: PairingKeyRow): Promise<boolean> {
  if (key.uses_left === null) return true
  const used = await db
    .updateTable('pairing_keys')
    .set((eb) => ({ uses_left: eb('uses_left', '-', 1) }))
    .where('code_hash', '=', key.code_hash)
    .where('uses_left', '>', 0)
    .returning('uses_left')
    .executeTakeFirst()
  return used !== undefined
}
