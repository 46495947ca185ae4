import type { FastifyInstance } from 'fastify'
import type { EventSeverity } from '@palisade/model'
import { EVENT_SEVERITIES } from '@palisade/model'
import type { AppContext } from '../context.js'
import { invalidOne, orNotFound } from '../errors.js'
import { eventHref } from '../hrefs.js'
import { collection, json, orgOf } from '../http.js'
import type { EventRow } from '../stores/events.js'
import { eventsMatching, findEvent } from '../stores/events.js'

function eventView(r: EventRow) {
  return {
    href: eventHref(r.org_id, r.uuid),
    uuid: r.uuid,
    timestamp: r.timestamp,
    pce_fqdn: 'palisade',
    event_type: r.event_type,
    status: r.status,
    severity: r.severity,
    version: 2,
    created_by: r.created_by,
    resource_changes: r.resource_changes,
    notifications: r.notifications,
  }
}

/** `timestamp[gte]` or `timestamp[lte]` as an ISO time; 406 when it is not a time. */
function timeParam(q: Record<string, string | undefined>, param: string): string | undefined {
  const v = q[param]
  if (v === undefined) return undefined
  if (Number.isNaN(Date.parse(v)))
    throw invalidOne('invalid_timestamp', `${param} must be an RFC 3339 time`)
  return new Date(v).toISOString()
}

/** Audit and agent events: read-only through the API (no update, no delete routes exist). */
export function registerEvents(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  api.get('/orgs/:org/events', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, string | undefined>
    if (q.severity && !EVENT_SEVERITIES.includes(q.severity as EventSeverity))
      throw invalidOne('invalid_severity', `severity must be one of ${EVENT_SEVERITIES.join(', ')}`)
    const events = eventsMatching(db, org, {
      ...(q.event_type && { eventType: q.event_type }),
      ...(q.severity && { severity: q.severity }),
      ...(q.status && { status: q.status }),
      since: timeParam(q, 'timestamp[gte]'),
      until: timeParam(q, 'timestamp[lte]'),
    })
    return collection(req, reply, ctx.jobs, org, events, (rows) => rows.map(eventView))
  })

  api.get('/orgs/:org/events/:uuid', async (req, reply) => {
    const org = orgOf(req)
    const uuid = (req.params as { uuid: string }).uuid
    return json(
      reply,
      200,
      eventView(orNotFound(await findEvent(db, org, uuid), eventHref(org, uuid))),
    )
  })
}
