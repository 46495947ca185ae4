/** Users, their API keys and their console sessions; every secret is kept only as a hash. */
import type { Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Db } from './db.js'

export type UserRow = Selectable<Database['users']>

export async function anyUser(db: Db): Promise<boolean> {
  return (await db.selectFrom('users').select('id').executeTakeFirst()) !== undefined
}

export async function userNamed(db: Db, username: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst()
}

export type NewUser = Pick<UserRow, 'org_id' | 'username' | 'password_hash' | 'created_at'> &
  Partial<Omit<UserRow, 'id'>>

export async function insertUser(db: Db, u: NewUser): Promise<number> {
  return (await db.insertInto('users').values(u).returning('id').executeTakeFirstOrThrow()).id
}

// ---- API keys ----

/** The user an API key belongs to, with the hash of the key's secret to compare. */
export async function apiKeyUser(db: Db, keyId: string) {
  return db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select(['api_keys.secret_hash', 'users.id', 'users.org_id', 'users.username'])
    .where('api_keys.key_id', '=', keyId)
    .executeTakeFirst()
}

export async function apiKeysOf(db: Db, userId: number) {
  return db
    .selectFrom('api_keys')
    .select(['key_id', 'name', 'created_at'])
    .where('user_id', '=', userId)
    .orderBy('id')
    .execute()
}

export type ApiKeyRow = Selectable<Database['api_keys']>
export type NewApiKey = Pick<
  ApiKeyRow,
  'user_id' | 'key_id' | 'secret_hash' | 'name' | 'created_at'
> &
  Partial<Omit<ApiKeyRow, 'id'>>

export async function insertApiKey(db: Db, key: NewApiKey): Promise<void> {
  await db.insertInto('api_keys').values(key).execute()
}

/** Deletes one of a user's API keys; resolves with whether there was one. */
export async function deleteApiKey(db: Db, userId: number, keyId: string): Promise<boolean> {
  const r = await db
    .deleteFrom('api_keys')
    .where('user_id', '=', userId)
    .where('key_id', '=', keyId)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

// ---- console sessions ----

/** A session by the hash of its id, with its user. */
export async function sessionWithHash(db: Db, idHash: string) {
  return db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.csrf', 'sessions.expires_at', 'users.id', 'users.org_id', 'users.username'])
    .where('sessions.id_hash', '=', idHash)
    .executeTakeFirst()
}

/** Starts a session; the ones that expired before it are deleted first. */
export async function insertSession(db: Db, s: Selectable<Database['sessions']>): Promise<void> {
  await db.deleteFrom('sessions').where('expires_at', '<', s.created_at).execute()
  await db.insertInto('sessions').values(s).execute()
}

export async function deleteSession(db: Db, idHash: string): Promise<void> {
  await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute()
}
