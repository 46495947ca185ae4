import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { randomSecret, sha256 } from '../crypto.js'
import { forbidden, notFound, orNotFound } from '../errors.js'
import { apiKeyHref, orgApiKeyHref, ownerRoleHref, serviceAccountHref, userHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { recordEvent } from '../stores/events.js'
import { serviceAccountOfUser } from '../stores/service-accounts.js'
import type { OrgApiKey } from '../stores/users.js'
import {
  apiKeysOf,
  apiKeysOfOrg,
  deleteApiKey,
  insertApiKey,
  updateApiKey,
} from '../stores/users.js'
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'

type KeyRow = Awaited<ReturnType<typeof apiKeysOf>>[number]

/** A user's key as `/users/{id}/api_keys` shows it (never its secret). */
function keyView(userId: number, r: KeyRow) {
  return {
    href: apiKeyHref(userId, r.key_id),
    key_id: r.key_id,
    auth_username: r.key_id,
    name: r.name,
    description: r.description ?? '',
    created_at: r.created_at,
    expires_at: r.expires_at,
    last_login_on: r.last_login_on,
  }
}

/** Checks a key's name and description (the name is required on create). */
function checkKey(body: Doc, create: boolean) {
  const c = new Checker()
  c.only(body, '$', ['name', 'description'])
  const name = c.string(body, 'name', '$', { required: create })
  const description = c.string(body, 'description', '$', { max: 1024, nullable: true })
  c.done()
  return {
    ...(name !== undefined && { name }),
    ...(body.description !== undefined && { description: description ?? null }),
  }
}

/**
 * Makes a key for a user (a person or a service account's principal); resolves with its id and
 * its secret, shown once: only the secret's hash is kept.
 */
export async function createApiKey(
  tx: Parameters<typeof insertApiKey>[0],
  req: FastifyRequest,
  key: { userId: number; name: string; description: string | null; expiresAt: string | null },
): Promise<{ keyId: string; secret: string }> {
  const keyId = `api_${randomSecret(8)}`
  const secret = randomSecret(32)
  await insertApiKey(tx, {
    user_id: key.userId,
    key_id: keyId,
    secret_hash: sha256(secret),
    name: key.name,
    description: key.description,
    expires_at: key.expiresAt,
    created_at: now(),
    created_by: JSON.stringify({ href: userActor(req).user.href }),
  })
  await recordEvent(tx, req.user?.org ?? 1, {
    event_type: 'api_key.create',
    created_by: userActor(req),
    resource_changes: [
      resourceChange('api_key', apiKeyHref(key.userId, keyId), 'create', undefined, {
        name: key.name,
        description: key.description,
      }),
    ],
  })
  return { keyId, secret }
}

/** A key as `/orgs/{org}/api_keys` shows it, with whose it is. */
async function orgKeyView(db: AppContext['db'], org: number, k: OrgApiKey) {
  const account =
    k.type === 'service_account' ? await serviceAccountOfUser(db, k.user_id) : undefined
  const expired = k.expires_at !== null && k.expires_at < now()
  return {
    href: orgApiKeyHref(org, k.key_id),
    key_id: k.key_id,
    auth_username: k.key_id,
    name: k.name,
    description: k.description ?? '',
    state: expired ? 'expired' : 'active',
    expires_in_seconds:
      k.expires_at === null
        ? -1
        : Math.max(0, Math.round((Date.parse(k.expires_at) - Date.now()) / 1000)),
    created_at: k.created_at,
    created_by: k.created_by === null ? null : (JSON.parse(k.created_by) as Doc),
    last_login_on: k.last_login_on,
    account: account
      ? { href: serviceAccountHref(org, account.id), type: 'service_account', name: account.name }
      : { href: userHref(k.user_id), type: 'user', name: k.username },
  }
}

/** API keys: each user manages its own (`/users/{id}/api_keys`); the org sees all of them. */
export function registerApiKeys(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const ownUser = (req: FastifyRequest) => {
    const id = Number((req.params as { id: string }).id)
    if (id !== req.user?.id) throw forbidden('an API user can manage only its own API keys')
    return id
  }
  const ownKey = async (req: FastifyRequest) => {
    const id = ownUser(req)
    const key = (req.params as { key: string }).key
    const row = (await apiKeysOf(db, id)).find((k) => k.key_id === key)
    return { id, key, row: orNotFound(row, apiKeyHref(id, key)) }
  }

  api.get('/users/:id/api_keys', async (req, reply) => {
    const id = ownUser(req)
    const rows = (await apiKeysOf(db, id)).map((r) => keyView(id, r))
    return collection(req, reply, ctx.jobs, req.user?.org ?? 1, rows)
  })

  api.get('/users/:id/api_keys/:key', async (req, reply) => {
    const { id, row } = await ownKey(req)
    return json(reply, 200, keyView(id, row))
  })

  api.post('/users/:id/api_keys', async (req, reply) => {
    const id = ownUser(req)
    const fields = checkKey(bodyObject(req), true)
    const made = await db.transaction().execute((tx) =>
      createApiKey(tx, req, {
        userId: id,
        name: fields.name ?? '',
        description: fields.description ?? null,
        expiresAt: null,
      }),
    )
    // The secret is shown once, here; only its hash is kept.
    return json(reply, 201, {
      href: apiKeyHref(id, made.keyId),
      key_id: made.keyId,
      auth_username: made.keyId,
      secret: made.secret,
      name: fields.name,
      description: fields.description ?? '',
      created_at: now(),
    })
  })

  api.put('/users/:id/api_keys/:key', async (req, reply) => {
    const { id, key, row } = await ownKey(req)
    const fields = checkKey(bodyObject(req), false)
    await db.transaction().execute(async (tx) => {
      await updateApiKey(tx, id, key, fields)
      await recordEvent(tx, req.user?.org ?? 1, {
        event_type: 'api_key.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'api_key',
            apiKeyHref(id, key),
            'update',
            { name: row.name, description: row.description },
            { name: row.name, description: row.description, ...fields },
          ),
        ],
      })
    })
    return reply.code(204).send()
  })

  const removeKey = async (req: FastifyRequest, userId: number, key: string, href: string) => {
    const gone = await db.transaction().execute(async (tx) => {
      const deleted = await deleteApiKey(tx, userId, key)
      if (deleted)
        await recordEvent(tx, req.user?.org ?? 1, {
          event_type: 'api_key.delete',
          created_by: userActor(req),
          resource_changes: [resourceChange('api_key', href, 'delete', { key_id: key }, undefined)],
        })
      return deleted
    })
    if (!gone) throw notFound(href)
  }

  api.delete('/users/:id/api_keys/:key', async (req, reply) => {
    const id = ownUser(req)
    const key = (req.params as { key: string }).key
    await removeKey(req, id, key, apiKeyHref(id, key))
    return reply.code(204).send()
  })

  api.get('/orgs/:org/api_keys', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const keys = await apiKeysOfOrg(db, org)
    const views = await Promise.all(keys.map((k) => orgKeyView(db, org, k)))
    const out = views.filter(
      (v) =>
        f.text('name', v.account.name) &&
        f.is('username', v.account.type === 'user' ? v.account.name : undefined) &&
        f.is('state', v.state) &&
        f.is('type', v.account.type) &&
        // One role, full access: every key has it.
        f.is('role', roleOf(f.string('role'), org)),
    )
    return collection(req, reply, ctx.jobs, org, out)
  })

  api.delete('/orgs/:org/api_keys/:key', async (req, reply) => {
    const org = orgOf(req)
    const key = (req.params as { key: string }).key
    const k = (await apiKeysOfOrg(db, org)).find((x) => x.key_id === key)
    if (!k) throw notFound(orgApiKeyHref(org, key))
    await removeKey(req, k.user_id, key, orgApiKeyHref(org, key))
    return reply.code(204).send()
  })
}

/**
 * A `role` filter's value when it names Palisade's one role (a JSON-encoded role href, or the
 * href as it is), so that every key or account matches it; undefined otherwise.
 */
export function roleOf(wanted: string | undefined, org: number): string | undefined {
  if (wanted === undefined) return undefined
  let href: unknown = wanted
  try {
    href = JSON.parse(wanted)
  } catch {
    // not JSON: the href as it is
  }
  return href === ownerRoleHref(org) ? wanted : undefined
}
