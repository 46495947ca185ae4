import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AppContext } from '../context.js'
import { randomSecret, sha256 } from '../crypto.js'
import { forbidden, notFound } from '../errors.js'
import { bodyObject, json, orgOf, userActor } from '../http.js'
import { now } from '../clock.js'
import { resourceChange } from '../audit.js'
import { recordEvent } from '../stores/events.js'
import { Checker } from '../validate.js'
import { apiKeyHref, datafileHref, jobHref } from '../hrefs.js'

export const PRODUCT_VERSION = {
  version: '25.2.10',
  build: 'palisade-0.1.0',
  long_display: 'Palisade 0.1.0 (Illumio Core API 25.2 compatible)',
  short_display: '25.2.10',
}

export function registerMisc(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  api.get('/health', async (_req, reply) =>
    json(reply, 200, [
      { status: 'normal', type: 'snc0', nodes: [{ hostname: 'palisade', status: 'normal' }] },
    ]),
  )
  api.get('/product_version', async (_req, reply) => json(reply, 200, PRODUCT_VERSION))

  api.get('/orgs/:org/settings/workloads', async (req, reply) => {
    orgOf(req)
    return json(reply, 200, {
      workload_disconnected_timeout_seconds: [{ value: 3600 }],
      workload_goodbye_timeout_seconds: [{ value: 900 }],
    })
  })

  /** Palisade's addition: what `palisade agent activate` needs besides a code (the console shows it). */
  api.get('/orgs/:org/agent_activation', async (req, reply) => {
    orgOf(req)
    const e = ctx.agentEndpoint()
    return json(reply, 200, {
      management_server: `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`,
      ca_cert: ctx.caCertFile ?? null,
    })
  })

  api.get('/orgs/:org/jobs/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const job = ctx.jobs.job(org, id)
    if (!job) throw notFound(jobHref(org, id))
    return json(reply, 200, job)
  })

  api.get('/orgs/:org/datafiles/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const data = ctx.jobs.datafile(org, id)
    if (!data) throw notFound(datafileHref(org, id))
    return json(reply, 200, data)
  })

  const ownUser = (req: FastifyRequest) => {
    const id = Number((req.params as { id: string }).id)
    if (id !== req.user?.id) throw forbidden('an API user can manage only its own API keys')
    return id
  }

  api.get('/users/:id/api_keys', async (req, reply) => {
    const id = ownUser(req)
    const rows = await db
      .selectFrom('api_keys')
      .select(['key_id', 'name', 'created_at'])
      .where('user_id', '=', id)
      .orderBy('id')
      .execute()
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
      await tx
        .insertInto('api_keys')
        .values({
          user_id: id,
          key_id: keyId,
          secret_hash: sha256(secret),
          name: name ?? '',
          created_at: now(),
        })
        .execute()
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
      const r = await tx
        .deleteFrom('api_keys')
        .where('user_id', '=', id)
        .where('key_id', '=', key)
        .executeTakeFirst()
      if (Number(r.numDeletedRows) > 0)
        await recordEvent(tx, req.user?.org ?? 1, {
          event_type: 'api_key.delete',
          created_by: userActor(req),
          resource_changes: [
            resourceChange('api_key', apiKeyHref(id, key), 'delete', { key_id: key }, undefined),
          ],
        })
      return Number(r.numDeletedRows)
    })
    if (gone === 0) throw notFound(apiKeyHref(id, key))
    return reply.code(204).send()
  })
}
