import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { randomSecret, sha256 } from '../crypto.js'
import { forbidden, notFound } from '../errors.js'
import { apiKeyHref } from '../hrefs.js'
import { bodyObject, json, userActor } from '../http.js'
import { recordEvent } from '../stores/events.js'
import { apiKeysOf, deleteApiKey, insertApiKey } from '../stores/users.js'
import { Checker } from '../validate.js'

/** A user's API keys: each user manages its own. */
export function registerApiKeys(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const ownUser = (req: FastifyRequest) => {
    const id = Number((req.params as { id: string }).id)
    if (id !== req.user?.id) throw forbidden('an API user can manage only its own API keys')
    return id
  }

  api.get('/users/:id/api_keys', async (req, reply) => {
    const id = ownUser(req)
    const rows = await apiKeysOf(db, id)
    const out = rows.map((r) => ({
      href: apiKeyHref(id, r.key_id),
      key_id: r.key_id,
      auth_username: r.key_id,
      name: r.name,
      created_at: r.created_at,
    }))
    return json(reply.header('x-total-count', String(out.length)), 200, out)
  })

  api.post('/users/:id/api_keys', async (req, reply) => {
    const id = ownUser(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['name', 'description'])
    const name = c.string(body, 'name', '$', { required: true })
    c.string(body, 'description', '$', { max: 1024, nullable: true })
    c.done()
    const keyId = `api_${randomSecret(8)}`
    const secret = randomSecret(32)
    await db.transaction().execute(async (tx) => {
      await insertApiKey(tx, {
        user_id: id,
        key_id: keyId,
        secret_hash: sha256(secret),
        name: name ?? '',
        created_at: now(),
      })
      await recordEvent(tx, req.user?.org ?? 1, {
        event_type: 'api_key.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('api_key', apiKeyHref(id, keyId), 'create', undefined, {
            name,
          }),
        ],
      })
    })
    // The secret is shown once, here; only its hash is kept.
    return json(reply, 201, {
      href: apiKeyHref(id, keyId),
      key_id: keyId,
      auth_username: keyId,
      secret,
      name,
    })
  })

  api.delete('/users/:id/api_keys/:key', async (req, reply) => {
    const id = ownUser(req)
    const key = (req.params as { key: string }).key
    const gone = await db.transaction().execute(async (tx) => {
      const deleted = await deleteApiKey(tx, id, key)
      if (deleted)
        await recordEvent(tx, req.user?.org ?? 1, {
          event_type: 'api_key.delete',
          created_by: userActor(req),
          resource_changes: [
            resourceChange('api_key', apiKeyHref(id, key), 'delete', { key_id: key }, undefined),
          ],
        })
      return deleted
    })
    if (!gone) throw notFound(apiKeyHref(id, key))
    return reply.code(204).send()
  })
}
