/**
 * Who an API request is: HTTP Basic with an API key (its id and secret, the secret compared by
 * its hash), or with session credentials from session login (`user_<id>` and the session
 * token), or the console's session cookie with its CSRF token.
 */
import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { now } from './clock.js'
import { sessionUser } from './console-session.js'
import { sameSecret, sha256 } from './crypto.js'
import type { Database } from './db/schema.js'
import type { AuthFailures } from './auth-failures.js'
import { ApiError } from './errors.js'
import { apiKeyUser, apiSessionWithHash, touchApiKey, touchApiSession } from './stores/users.js'

/** An API session ends after this long unused (`inactivity_expiration_minutes`). */
export const SESSION_IDLE_MINUTES = 10
/** A key's or a session's last use is written at most this often. */
const TOUCH_MS = 60_000

/** The name session credentials go by: `user_<id>`, as the vendor's. */
export const sessionUsername = (userId: number) => `user_${userId}`

const refused = (message: string) =>
  new ApiError(401, [{ token: 'authentication_required', message }])

const HOW =
  'use an API key (HTTP Basic with its auth_username and secret), or session credentials from POST /api/v2/login_users/authenticate and GET /api/v2/users/login'

/** The time `ms` before now, as stored. */
const before = (ms: number) => new Date(Date.now() - ms).toISOString()

/**
 * Sets `req.user` from the request's credentials, or throws their 401. Credentials that
 * failed too often this minute from the request's source get a 429 before they are looked at
 * (`failures`).
 */
export async function authenticate(
  db: Kysely<Database>,
  req: FastifyRequest,
  failures: AuthFailures,
): Promise<void> {
  const h = req.headers.authorization ?? ''
  if (!h.startsWith('Basic ')) {
    const user = await sessionUser(db, req)
    if (!user) throw refused(`credentials are required: ${HOW}`)
    req.user = user
    return
  }
  const [name = '', secret = ''] = Buffer.from(h.slice(6), 'base64').toString().split(/:(.*)/s)
  failures.check(req.ip, name)
  const failed = (why: string) => {
    failures.fail(req.ip, 'request.authentication_failed', name, why)
    return refused(`${why}: ${HOW}`)
  }
  const session = /^user_\d+$/.test(name)
  if (session) {
    const hash = sha256(secret)
    const s = await apiSessionWithHash(db, hash)
    if (!s || sessionUsername(s.id) !== name)
      throw failed('these session credentials are not valid (or the session ended)')
    if (s.last_used_at < before(SESSION_IDLE_MINUTES * 60_000))
      throw failed(`the session ended after ${SESSION_IDLE_MINUTES} minutes unused`)
    if (s.last_used_at < before(TOUCH_MS)) await touchApiSession(db, hash, now())
    req.user = { id: s.id, org: s.org_id, username: s.username, session: hash }
    return
  }
  const row = await apiKeyUser(db, name)
  if (!row || !sameSecret(row.secret_hash, sha256(secret)))
    throw failed('this API user and secret are not valid')
  if (row.expires_at !== null && row.expires_at < now())
    throw failed(`the API key ${name} expired at ${row.expires_at}`)
  if (row.last_login_on === null || row.last_login_on < before(TOUCH_MS))
    await touchApiKey(db, name, now())
  req.user = { id: row.id, org: row.org_id, username: row.username }
}
