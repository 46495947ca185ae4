import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid } from '../crypto.js'
import { notFound, orNotFound } from '../errors.js'
import { apiKeyHref, ownerRoleHref, serviceAccountHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { recordEvent } from '../stores/events.js'
import type { ServiceAccountRow } from '../stores/service-accounts.js'
import {
  deleteServiceAccount,
  findServiceAccount,
  insertServiceAccount,
  serviceAccountsOf,
  updateServiceAccount,
} from '../stores/service-accounts.js'
import { apiKeysOf, deleteApiKey, deleteUser, insertUser } from '../stores/users.js'
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'
import { createApiKey, roleOf } from './api-keys.js'

/** At most this long, as the vendor's (about 10 years). */
const MAX_KEY_SECONDS = 315_360_000

/**
 * Checks `permissions`: Palisade has one role, full access to the org, so only the owner role
 * with no scope is honest; a narrower one would grant more than asked, and is refused.
 */
function permissionsOf(c: Checker, body: Doc, org: number, required: boolean): Doc[] | undefined {
  const list = c.array(body, 'permissions', '$', { required, max: 100 })
  if (!list) return undefined
  if (list.length === 0) c.fail('$.permissions', 'must hold at least one permission')
  list.forEach((p, i) => {
    const path = `$.permissions[${i}]`
    const o = c.object(p, path)
    if (!o) return
    c.only(o, path, ['role', 'scope'])
    const role = c.hrefRef(o.role, `${path}.role`)
    if (role !== undefined && role !== ownerRoleHref(org))
      c.fail(
        `${path}.role`,
        `Palisade has no role-based access: every key has full access (${ownerRoleHref(org)}); a key with ${role} would have more than that role allows`,
        'not_supported',
      )
    const scope = o.scope === undefined ? [] : c.array(o, 'scope', path, { max: 64 })
    if (scope && scope.length > 0)
      c.fail(
        `${path}.scope`,
        'Palisade has no scoped access: a key limited to some labels would see the whole org; leave the scope empty',
        'not_supported',
      )
  })
  return list.filter(isObj).map(() => ({ role: { href: ownerRoleHref(org) }, scope: [] }))
}

/** `expires_in_seconds`: a number of seconds, or "default" (never, at Palisade). */
function expiryOf(c: Checker, x: unknown, path: string): string | null | undefined {
  const o = c.object(x, path)
  if (!o) return undefined
  c.only(o, path, ['expires_in_seconds'])
  if (o.expires_in_seconds === 'default' || o.expires_in_seconds === undefined) return null
  const s = c.int(o, 'expires_in_seconds', path, { min: 1, max: MAX_KEY_SECONDS })
  return s === undefined ? undefined : new Date(Date.now() + s * 1000).toISOString()
}

/** Service accounts: principals for scripts, acting through their own API keys. */
export function registerServiceAccounts(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = async (req: FastifyRequest) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    return orNotFound(await findServiceAccount(db, org, id), serviceAccountHref(org, id))
  }
  const view = async (a: ServiceAccountRow) => ({
    href: serviceAccountHref(a.org_id, a.id),
    name: a.name,
    description: a.description,
    permissions: a.permissions,
    access_restriction: null,
    api_keys: (await apiKeysOf(db, a.user_id)).map((k) => ({
      href: apiKeyHref(a.user_id, k.key_id),
      key_id: k.key_id,
      auth_username: k.key_id,
      expires_at: k.expires_at,
      created_at: k.created_at,
    })),
    created_at: a.created_at,
    updated_at: a.updated_at,
    created_by: a.created_by,
  })

  api.get('/orgs/:org/service_accounts', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const rows = (await serviceAccountsOf(db, org)).filter(
      (a) =>
        f.text('name', a.name) && !f.has('managing') && f.is('role', roleOf(f.string('role'), org)),
    )
    return collection(req, reply, ctx.jobs, org, rows, (page) => Promise.all(page.map(view)))
  })

  api.get('/orgs/:org/service_accounts/:id', async (req, reply) =>
    json(reply, 200, await view(await find(req))),
  )

  api.post('/orgs/:org/service_accounts', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['name', 'description', 'permissions', 'api_key', 'access_restriction'])
    const name = c.string(body, 'name', '$', { required: true })
    const description = c.string(body, 'description', '$', { max: 1024, nullable: true })
    const permissions = permissionsOf(c, body, org, true)
    if (body.access_restriction !== undefined && body.access_restriction !== null)
      c.fail(
        '$.access_restriction',
        'Palisade has no access restrictions by address; leave it out or null',
        'not_supported',
      )
    if (body.api_key === undefined) c.fail('$.api_key', 'is required')
    const expiresAt = body.api_key === undefined ? null : expiryOf(c, body.api_key, '$.api_key')
    c.done()
    const id = newUuid()
    const t = now()
    const made = await db.transaction().execute(async (tx) => {
      const userId = await insertUser(tx, {
        org_id: org,
        username: `svc_${id}`,
        // No password opens this account: only its keys do.
        password_hash: '!',
        created_at: t,
        full_name: name ?? '',
        type: 'service_account',
      })
      await insertServiceAccount(tx, {
        id,
        org_id: org,
        user_id: userId,
        name: name ?? '',
        description: description ?? '',
        permissions: permissions ?? [],
        created_at: t,
        created_by: { href: userActor(req).user.href },
      })
      await recordEvent(tx, org, {
        event_type: 'service_account.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('service_account', serviceAccountHref(org, id), 'create', undefined, {
            name,
          }),
        ],
      })
      return createApiKey(tx, req, {
        userId,
        name: name ?? '',
        description: null,
        expiresAt: expiresAt ?? null,
      })
    })
    const account = orNotFound(await findServiceAccount(db, org, id), serviceAccountHref(org, id))
    // The key's secret is shown once, here.
    return json(reply, 201, {
      ...(await view(account)),
      api_key: { key_id: made.keyId, auth_username: made.keyId, secret: made.secret },
    })
  })

  api.put('/orgs/:org/service_accounts/:id', async (req, reply) => {
    const before = await find(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['name', 'description', 'permissions', 'access_restriction'])
    const name = c.string(body, 'name', '$')
    const description = c.string(body, 'description', '$', { max: 1024, nullable: true })
    const permissions = permissionsOf(c, body, before.org_id, false)
    if (body.access_restriction !== undefined && body.access_restriction !== null)
      c.fail(
        '$.access_restriction',
        'Palisade has no access restrictions by address; leave it out or null',
        'not_supported',
      )
    c.done()
    const fields = {
      ...(name !== undefined && { name }),
      ...(body.description !== undefined && { description: description ?? '' }),
      ...(permissions && { permissions }),
    }
    await db.transaction().execute(async (tx) => {
      await updateServiceAccount(tx, before.id, { ...fields, updated_at: now() })
      await recordEvent(tx, before.org_id, {
        event_type: 'service_account.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'service_account',
            serviceAccountHref(before.org_id, before.id),
            'update',
            { name: before.name, description: before.description },
            { name: before.name, description: before.description, ...fields },
          ),
        ],
      })
    })
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/service_accounts/:id', async (req, reply) => {
    const a = await find(req)
    await db.transaction().execute(async (tx) => {
      await deleteServiceAccount(tx, a.id)
      await deleteUser(tx, a.user_id)
      await recordEvent(tx, a.org_id, {
        event_type: 'service_account.delete',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('service_account', serviceAccountHref(a.org_id, a.id), 'delete', {
            name: a.name,
          }),
        ],
      })
    })
    return reply.code(204).send()
  })

  api.post('/orgs/:org/service_accounts/:id/api_keys', async (req, reply) => {
    const a = await find(req)
    const c = new Checker()
    const expiresAt = expiryOf(c, bodyObject(req), '$')
    c.done()
    const made = await db.transaction().execute((tx) =>
      createApiKey(tx, req, {
        userId: a.user_id,
        name: a.name,
        description: null,
        expiresAt: expiresAt ?? null,
      }),
    )
    return json(reply, 201, {
      href: apiKeyHref(a.user_id, made.keyId),
      key_id: made.keyId,
      auth_username: made.keyId,
      secret: made.secret,
      expires_at: expiresAt ?? null,
    })
  })

  api.delete('/orgs/:org/service_accounts/:id/api_keys/:key', async (req, reply) => {
    const a = await find(req)
    const key = (req.params as { key: string }).key
    const href = apiKeyHref(a.user_id, key)
    const gone = await db.transaction().execute(async (tx) => {
      const deleted = await deleteApiKey(tx, a.user_id, key)
      if (deleted)
        await recordEvent(tx, a.org_id, {
          event_type: 'api_key.delete',
          created_by: userActor(req),
          resource_changes: [resourceChange('api_key', href, 'delete', { key_id: key })],
        })
      return deleted
    })
    if (!gone) throw notFound(href)
    return reply.code(204).send()
  })
}
