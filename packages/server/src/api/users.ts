import type { FastifyInstance, FastifyRequest } from 'fastify'
import { SESSION_IDLE_MINUTES, sessionUsername } from '../api-auth.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import type { AuthFailures } from '../auth-failures.js'
import { randomSecret, sha256, verifyUserPassword } from '../crypto.js'
import { ApiError, forbidden, invalidOne, notFound, orNotFound } from '../errors.js'
import { userHref } from '../hrefs.js'
import { json } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { PerMinuteLimit } from '../rate-limit.js'
import { recordEvent } from '../stores/events.js'
import type { UserRow } from '../stores/users.js'
import {
  deleteApiSessions,
  findUser,
  insertApiSession,
  insertAuthToken,
  recordLogin,
  takeAuthToken,
  userNamed,
  usersOfOrg,
} from '../stores/users.js'
import { isObj } from '../validate.js'
import { PRODUCT_VERSION } from './misc.js'

/** An auth token is exchanged for a session within this time, once. */
const AUTH_TOKEN_SECONDS = 30
/** Password sign-ins per minute per client address. */
const SIGN_INS_PER_MINUTE = 10

function userView(u: UserRow) {
  return {
    href: userHref(u.id),
    username: u.username,
    full_name: u.full_name ?? u.username,
    type: u.type,
    time_zone: u.time_zone,
    locked: false,
    last_login_on: u.last_login_on,
    last_login_ip_address: u.last_login_ip_address,
    login_count: u.login_count,
    effective_groups: [],
    created_at: u.created_at,
    updated_at: u.created_at,
  }
}

const orgsOf = (u: UserRow) => [
  {
    org_id: u.org_id,
    href: `/orgs/${u.org_id}`,
    org_href: `/orgs/${u.org_id}`,
    display_name: `Org ${u.org_id}`,
  },
]

/**
 * Users, and session login as the vendor's clients do it: a password for a short auth token
 * (`POST /login_users/authenticate`), the token for session credentials (`GET /users/login`),
 * which then authenticate like an API key until unused for 10 minutes or logged out.
 */
export function registerUsers(api: FastifyInstance, ctx: AppContext, failures: AuthFailures): void {
  const { db } = ctx
  const signIns = new PerMinuteLimit(SIGN_INS_PER_MINUTE)

  /** A user id in the path: the caller's own (403 otherwise), and one that exists. */
  const ownUser = async (req: FastifyRequest) => {
    const id = Number((req.params as { id: string }).id)
    if (id !== req.user?.id) throw forbidden('a user can see and end only its own sessions')
    return orNotFound(await findUser(db, id), userHref(id))
  }

  api.post('/login_users/authenticate', async (req, reply) => {
    signIns.take(req.ip)
    if (
      filtersOf(req).has('one_time_password') ||
      (isObj(req.body) && 'one_time_password' in req.body)
    )
      throw invalidOne(
        'two_factor_not_configured',
        'one_time_password: Palisade has no two-factor sign-in; authenticate with the password alone',
      )
    if (
      req.body !== undefined &&
      req.body !== null &&
      !(isObj(req.body) && Object.keys(req.body).length === 0)
    )
      throw invalidOne(
        'input_validation_error',
        'the body must be empty, {} or {"one_time_password": …}',
      )
    const h = req.headers.authorization ?? ''
    const [username = '', password = ''] = h.startsWith('Basic ')
      ? Buffer.from(h.slice(6), 'base64').toString().split(/:(.*)/s)
      : []
    failures.check(req.ip, username)
    const user = username ? await userNamed(db, username) : undefined
    const ok = await verifyUserPassword(
      password.slice(0, 1024),
      user?.type === 'local' ? user.password_hash : undefined,
    )
    if (!user || !ok) {
      failures.fail(req.ip, 'user.login_failed', username, 'the username or the password is wrong')
      throw new ApiError(401, [
        {
          token: 'invalid_credentials',
          message:
            'the username or the password is wrong (HTTP Basic with the username and password)',
        },
      ])
    }
    const token = randomSecret(32)
    const t = Date.now()
    await insertAuthToken(db, {
      tokenHash: sha256(token),
      userId: user.id,
      expiresAt: new Date(t + AUTH_TOKEN_SECONDS * 1000).toISOString(),
      now: new Date(t).toISOString(),
    })
    await recordEvent(db, user.org_id, {
      event_type: 'user.authenticate',
      created_by: { user: { href: userHref(user.id), username: user.username } },
      notifications: [{ notification_type: 'user.authenticate', info: { src_ip: req.ip } }],
    })
    return json(reply, 201, { auth_token: token })
  })

  /**
   * With `Authorization: Token token=<auth token>`: a new session, its credentials shown once.
   * With other credentials: who the caller is.
   */
  api.get('/users/login', async (req, reply) => {
    const h = req.headers.authorization ?? ''
    let user: UserRow | undefined
    let sessionToken: string | undefined
    if (h.startsWith('Token ')) {
      const token = /^Token token=(.+)$/.exec(h)?.[1] ?? ''
      const at = now()
      const id = await takeAuthToken(db, sha256(token), at)
      user = id === undefined ? undefined : await findUser(db, id)
      if (!user)
        throw new ApiError(401, [
          {
            token: 'invalid_auth_token',
            message: `the auth token is not valid: it is used once, within ${AUTH_TOKEN_SECONDS} s of POST /api/v2/login_users/authenticate`,
          },
        ])
      sessionToken = randomSecret(32)
      const u = user
      await db.transaction().execute(async (tx) => {
        await insertApiSession(tx, { tokenHash: sha256(sessionToken ?? ''), userId: u.id, at })
        await recordLogin(tx, u.id, at, req.ip)
        await recordEvent(tx, u.org_id, {
          event_type: 'user.login',
          created_by: { user: { href: userHref(u.id), username: u.username } },
          notifications: [
            { notification_type: 'user.pce_session_created', info: { src_ip: req.ip } },
          ],
        })
      })
      user = await findUser(db, u.id)
    } else user = await findUser(db, req.user?.id ?? 0)
    if (!user) throw forbidden('no user')
    return json(reply, 200, {
      href: userHref(user.id),
      auth_username: sessionUsername(user.id),
      ...(sessionToken !== undefined && { session_token: sessionToken }),
      inactivity_expiration_minutes: SESSION_IDLE_MINUTES,
      full_name: user.full_name ?? user.username,
      type: user.type,
      local: true,
      time_zone: user.time_zone,
      last_login_on: user.last_login_on,
      last_login_ip_address: user.last_login_ip_address,
      product_version: PRODUCT_VERSION,
      orgs: orgsOf(user),
    })
  })

  /** Ends the caller's session (or, called with a key, every session of the caller). */
  api.put('/users/:id/logout', async (req, reply) => {
    const u = await ownUser(req)
    const session = req.user?.session
    await deleteApiSessions(
      db,
      session ? { tokenHash: session } : { userId: u.id },
      new Date(Date.now() - SESSION_IDLE_MINUTES * 60_000).toISOString(),
    )
    await recordEvent(db, u.org_id, {
      event_type: 'user.logout',
      created_by: { user: { href: userHref(u.id), username: u.username } },
    })
    return reply.code(204).send()
  })

  api.get('/users', async (req, reply) => {
    const type = filtersOf(req).string('type')
    const users = await usersOfOrg(db, req.user?.org ?? 0, type)
    return json(reply.header('x-total-count', String(users.length)), 200, users.map(userView))
  })

  api.get('/users/:id', async (req, reply) => {
    const id = Number((req.params as { id: string }).id)
    const u = await findUser(db, id)
    // Another org's user is as unknown as none.
    if (!u || u.org_id !== req.user?.org || u.type === 'service_account')
      throw notFound(userHref(id))
    return json(reply, 200, userView(u))
  })

  api.get('/users/:id/orgs', async (req, reply) => {
    const u = await ownUser(req)
    return json(reply, 200, orgsOf(u))
  })
}
