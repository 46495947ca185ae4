/**
 * Users (people, and service accounts' principals), their API keys, their console sessions and
 * their API sessions (session login); every secret is kept only as a hash.
 */
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

export async function findUser(db: Db, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The org's people (not service accounts' principals), of one type when asked. */
export async function usersOfOrg(db: Db, org: number, type?: string): Promise<UserRow[]> {
  let query = db
    .selectFrom('users')
    .selectAll()
    .where('org_id', '=', org)
    .where('type', '!=', 'service_account')
  if (type !== undefined) query = query.where('type', '=', type)
  return query.orderBy('id').execute()
}

/** Counts a sign-in: when, from where, how many. */
export async function recordLogin(db: Db, id: number, at: string, ip: string): Promise<void> {
  await db
    .updateTable('users')
    .set((eb) => ({
      last_login_on: at,
      last_login_ip_address: ip,
      login_count: eb('login_count', '+', 1),
    }))
    .where('id', '=', id)
    .execute()
}

export async function deleteUser(db: Db, id: number): Promise<void> {
  await db.deleteFrom('api_keys').where('user_id', '=', id).execute()
  await db.deleteFrom('api_sessions').where('user_id', '=', id).execute()
  await db.deleteFrom('users').where('id', '=', id).execute()
}

// ---- API keys ----

/** The user an API key belongs to, with the hash of the key's secret to compare. */
export async function apiKeyUser(db: Db, keyId: string) {
  return db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select([
      'api_keys.secret_hash',
      'api_keys.expires_at',
      'api_keys.last_login_on',
      'users.id',
      'users.org_id',
      'users.username',
    ])
    .where('api_keys.key_id', '=', keyId)
    .executeTakeFirst()
}

/** Records that a key was used (callers do so at most once a minute). */
export async function touchApiKey(db: Db, keyId: string, at: string): Promise<void> {
  await db.updateTable('api_keys').set({ last_login_on: at }).where('key_id', '=', keyId).execute()
}

/** What a key shows: everything but its secret's hash. */
const KEY_COLUMNS = [
  'api_keys.key_id',
  'api_keys.name',
  'api_keys.description',
  'api_keys.created_at',
  'api_keys.created_by',
  'api_keys.expires_at',
  'api_keys.last_login_on',
  'api_keys.user_id',
] as const

export async function apiKeysOf(db: Db, userId: number) {
  return db
    .selectFrom('api_keys')
    .select(KEY_COLUMNS)
    .where('user_id', '=', userId)
    .orderBy('id')
    .execute()
}

/** Every key of the org's users and service accounts, with whose it is. */
export async function apiKeysOfOrg(db: Db, org: number) {
  return db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select(KEY_COLUMNS)
    .select(['users.username', 'users.type', 'users.full_name'])
    .where('users.org_id', '=', org)
    .orderBy('api_keys.id')
    .execute()
}
export type OrgApiKey = Awaited<ReturnType<typeof apiKeysOfOrg>>[number]

export async function updateApiKey(
  db: Db,
  userId: number,
  keyId: string,
  fields: { name?: string; description?: string | null },
): Promise<boolean> {
  // Nothing to set (`PUT {}`): an UPDATE without a SET clause is an SQL error.
  if (Object.keys(fields).length === 0) return true
  const r = await db
    .updateTable('api_keys')
    .set(fields)
    .where('user_id', '=', userId)
    .where('key_id', '=', keyId)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
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

// ---- session login: auth tokens and API sessions ----

/** Stores a new auth token (its hash); the expired ones go first. */
export async function insertAuthToken(
  db: Db,
  t: { tokenHash: string; userId: number; expiresAt: string; now: string },
): Promise<void> {
  await db.deleteFrom('auth_tokens').where('expires_at', '<', t.now).execute()
  await db
    .insertInto('auth_tokens')
    .values({ token_hash: t.tokenHash, user_id: t.userId, expires_at: t.expiresAt })
    .execute()
}

/**
 * Uses an auth token up: resolves with its user if it exists and has not expired. It can be
 * used once (deleted whatever the outcome, in the same statement).
 */
export async function takeAuthToken(
  db: Db,
  tokenHash: string,
  now: string,
): Promise<number | undefined> {
  const r = await db
    .deleteFrom('auth_tokens')
    .where('token_hash', '=', tokenHash)
    .returning(['user_id', 'expires_at'])
    .executeTakeFirst()
  return r && r.expires_at >= now ? r.user_id : undefined
}

export async function insertApiSession(
  db: Db,
  s: { tokenHash: string; userId: number; at: string },
): Promise<void> {
  await db
    .insertInto('api_sessions')
    .values({ token_hash: s.tokenHash, user_id: s.userId, created_at: s.at, last_used_at: s.at })
    .execute()
}

/** An API session by its token's hash, with its user. */
export async function apiSessionWithHash(db: Db, tokenHash: string) {
  return db
    .selectFrom('api_sessions')
    .innerJoin('users', 'users.id', 'api_sessions.user_id')
    .select(['api_sessions.last_used_at', 'users.id', 'users.org_id', 'users.username'])
    .where('api_sessions.token_hash', '=', tokenHash)
    .executeTakeFirst()
}

export async function touchApiSession(db: Db, tokenHash: string, at: string): Promise<void> {
  await db
    .updateTable('api_sessions')
    .set({ last_used_at: at })
    .where('token_hash', '=', tokenHash)
    .execute()
}

/** Ends API sessions: one (by its hash), or all of a user's; the idle ones of anyone go too. */
export async function deleteApiSessions(
  db: Db,
  which: { tokenHash: string } | { userId: number },
  idleBefore: string,
): Promise<void> {
  await db.deleteFrom('api_sessions').where('last_used_at', '<', idleBefore).execute()
  let query = db.deleteFrom('api_sessions')
  query =
    'tokenHash' in which
      ? query.where('token_hash', '=', which.tokenHash)
      : query.where('user_id', '=', which.userId)
  await query.execute()
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
