/**
 * Service accounts: a name, a description and permissions, acting through API keys of their
 * own. Each has a principal in `users` (type `service_account`, no password), so its keys
 * authenticate like any user's.
 */
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Doc } from '../validate.js'
import type { Db } from './db.js'

type AccountRecord = Selectable<Database['service_accounts']>
export interface ServiceAccountRow extends Omit<AccountRecord, 'permissions' | 'created_by'> {
  readonly permissions: Doc[]
  readonly created_by: Doc
}

const decode = (r: AccountRecord): ServiceAccountRow => ({
  ...r,
  permissions: JSON.parse(r.permissions) as Doc[],
  created_by: JSON.parse(r.created_by) as Doc,
})

export async function serviceAccountsOf(db: Db, org: number): Promise<ServiceAccountRow[]> {
  const rows = await db
    .selectFrom('service_accounts')
    .selectAll()
    .where('org_id', '=', org)
    .orderBy('created_at')
    .execute()
  return rows.map(decode)
}

export async function findServiceAccount(
  db: Db,
  org: number,
  id: string,
): Promise<ServiceAccountRow | undefined> {
  const r = await db
    .selectFrom('service_accounts')
    .selectAll()
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return r && decode(r)
}

/** The service account a principal (a user row) acts for, if it is one. */
export async function serviceAccountOfUser(
  db: Db,
  userId: number,
): Promise<ServiceAccountRow | undefined> {
  const r = await db
    .selectFrom('service_accounts')
    .selectAll()
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return r && decode(r)
}

export async function insertServiceAccount(
  db: Db,
  a: Omit<ServiceAccountRow, 'updated_at'>,
): Promise<void> {
  await db
    .insertInto('service_accounts')
    .values({
      ...a,
      updated_at: a.created_at,
      permissions: JSON.stringify(a.permissions),
      created_by: JSON.stringify(a.created_by),
    })
    .execute()
}

export async function updateServiceAccount(
  db: Db,
  id: string,
  fields: { name?: string; description?: string; permissions?: Doc[]; updated_at: string },
): Promise<void> {
  const { permissions, ...rest } = fields
  await db
    .updateTable('service_accounts')
    .set({ ...rest, ...(permissions && { permissions: JSON.stringify(permissions) }) })
    .where('id', '=', id)
    .execute()
}

export async function deleteServiceAccount(db: Db, id: string): Promise<void> {
  await db.deleteFrom('service_accounts').where('id', '=', id).execute()
}
