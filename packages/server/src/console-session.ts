import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { now } from './clock.js'
import type { AuthFailures } from './auth-failures.js'
import { randomSecret, sameSecret, sha256, verifyUserPassword } from './crypto.js'
import type { Database } from './db/schema.js'
import { ApiError, forbidden, invalidOne, unauthorized } from './errors.js'
import { userHref } from './hrefs.js'
import { bodyObject, json } from './http.js'
import { PerMinuteLimit } from './rate-limit.js'
import { recordEvent } from './stores/events.js'
import { deleteSession, insertSession, sessionWithHash, userNamed } from './stores/users.js'
import { Checker } from './validate.js'

/**
 * Sign-in for the web console: a session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
 * and a CSRF token the console sends back in `X-CSRF-Token` on every change. The API accepts
 * either this session or HTTP Basic with an API key; only the session needs the CSRF token,
 * since a browser never adds a Basic header on its own.
 */
export const SESSION_COOKIE = 'palisade_session'
const SESSION_HOURS = 12
const SIGN_INS_PER_MINUTE = 10

function cookieOf(req: FastifyRequest): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === SESSION_COOKIE) return v.join('=')
  }
  return undefined
}

const setCookie = (reply: FastifyReply, value: string, maxAge: number, secure: boolean) =>
  reply.header(
    'set-cookie',
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`,
  )

/** The request's session and its user: undefined without a cookie, 401 for an unknown or old one. */
async function sessionOf(db: Kysely<Database>, req: FastifyRequest) {
  const id = cookieOf(req)
  if (!id) return undefined
  const s = await sessionWithHash(db, sha256(id))
  if (!s || s.expires_at < now()) throw unauthorized()
  return s
}

/** The user of a console session, or undefined when the request carries none. */
export async function sessionUser(
  db: Kysely<Database>,
  req: FastifyRequest,
): Promise<{ id: number; org: number; username: string } | undefined> {
  const s = await sessionOf(db, req)
  if (!s) return undefined
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    const token = req.headers['x-csrf-token']
    if (typeof token !== 'string' || !sameSecret(sha256(token), sha256(s.csrf)))
      throw forbidden('this change needs the X-CSRF-Token header of your session')
  }
  return { id: s.id, org: s.org_id, username: s.username }
}

export function registerConsoleSession(
  app: FastifyInstance,
  db: Kysely<Database>,
  secure: boolean,
  failures: AuthFailures,
): void {
  const signIns = new PerMinuteLimit(SIGN_INS_PER_MINUTE)

  app.post('/session', async (req, reply) => {
    signIns.take(req.ip)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['username', 'password'])
    const username = c.string(body, 'username', '$', { required: true })
    const password = c.string(body, 'password', '$', { required: true, max: 1024 })
    c.done()
    failures.check(req.ip, username ?? '')
    const user = await userNamed(db, username ?? '')
    if (!(await verifyUserPassword(password ?? '', user?.password_hash)) || !user) {
      failures.fail(
        req.ip,
        'user.login_failed',
        username ?? '',
        'the username or the password is wrong',
      )
      throw new ApiError(401, [
        { token: 'invalid_credentials', message: 'the username or the password is wrong' },
      ])
    }
    const id = randomSecret()
    const csrf = randomSecret()
    const created = now()
    // Sessions nobody signed out of expire: they go when the next one is made.
    await insertSession(db, {
      id_hash: sha256(id),
      user_id: user.id,
      csrf,
      created_at: created,
      expires_at: new Date(Date.now() + SESSION_HOURS * 3_600_000).toISOString(),
    })
    await recordEvent(db, user.org_id, {
      event_type: 'user.sign_in',
      created_by: { user: { href: userHref(user.id), username: user.username } },
      notifications: [{ notification_type: 'user.sign_in', info: { src_ip: req.ip } }],
    })
    setCookie(reply, id, SESSION_HOURS * 3600, secure)
    return json(reply, 201, { username: user.username, org_id: user.org_id, csrf_token: csrf })
  })

  app.get('/session', async (req, reply) => {
    const s = await sessionOf(db, req)
    if (!s) throw unauthorized()
    return json(reply, 200, { username: s.username, org_id: s.org_id, csrf_token: s.csrf })
  })

  app.delete('/session', async (req, reply) => {
    const user = await sessionUser(db, req)
    if (!user) throw invalidOne('no_session', 'there is no session to sign out of')
    await deleteSession(db, sha256(cookieOf(req) ?? ''))
    await recordEvent(db, user.org, {
      event_type: 'user.sign_out',
      created_by: { user: { href: userHref(user.id), username: user.username } },
    })
    setCookie(reply, '', 0, secure)
    return reply.code(204).send()
  })
}
