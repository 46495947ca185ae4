import type { FastifyInstance } from 'fastify'
import type { EventSeverity } from '@palisade/model'
import { EVENT_SEVERITIES } from '@palisade/model'
import type { Selectable } from 'kysely'
import type { AppContext } from '../app.js'
import type { Database } from '../db/schema.js'
import { invalidOne, notFound } from '../errors.js'
import { collection, countOf, json, orgOf } from '../http.js'

export function eventView(r: Selectable<Database['events']>) {
  return {
    href: `/orgs/${r.org_id}/events/${r.uuid}`,
    uuid: r.uuid,
    timestamp: r.timestamp,
    pce_fqdn: 'palisade',
    event_type: r.event_type,
    status: r.status,
    severity: r.severity,
    version: 2,
    created_by: JSON.parse(r.created_by) as unknown,
    resource_changes: JSON.parse(r.resource_changes) as unknown,
    notifications: JSON.parse(r.notifications) as unknown,
  }
}

/** Audit and agent events: read-only through the API (no update, no delete routes exist). */
export function registerEvents(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  api.get('/orgs/:org/events', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, string | undefined>
    let query = db.selectFrom('events').selectAll().where('org_id', '=', org)
    if (q.event_type) query = query.where('event_type', '=', q.event_type)
    if (q.severity) {
      if (!EVENT_SEVERITIES.includes(q.severity as EventSeverity))
        throw invalidOne(
          'invalid_severity',
          `severity must be one of ${EVENT_SEVERITIES.join(', ')}`,
        )
      query = query.where('severity', '=', q.severity)
    }
    if (q.status) query = query.where('status', '=', q.status)
    for (const [param, op] of [
      ['timestamp[gte]', '>='],
      ['timestamp[lte]', '<='],
    ] as const) {
      const v = q[param]
      if (v === undefined) continue
      if (Number.isNaN(Date.parse(v)))
        throw invalidOne('invalid_timestamp', `${param} must be an RFC 3339 time`)
      query = query.where('timestamp', op, new Date(v).toISOString())
    }
    return collection(
      req,
      reply,
      ctx.jobs,
      org,
      {
        count: () => countOf(query),
        read: (limit) => query.orderBy('seq', 'desc').limit(limit).execute(),
      },
      (rows) => rows.map(eventView),
    )
  })

  api.get('/orgs/:org/events/:uuid', async (req, reply) => {
    const org = orgOf(req)
    const uuid = (req.params as { uuid: string }).uuid
    const row = await db
      .selectFrom('events')
      .selectAll()
      .where('org_id', '=', org)
      .where('uuid', '=', uuid)
      .executeTakeFirst()
    if (!row) throw notFound(`/orgs/${org}/events/${uuid}`)
    return json(reply, 200, eventView(row))
  })
}
