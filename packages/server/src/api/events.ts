import type { FastifyInstance } from 'fastify'
import type { AppContext } from '../context.js'
import { orNotFound } from '../errors.js'
import { eventHref } from '../hrefs.js'
import { collection, json, orgOf } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
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
    version: '2',
    created_by: r.created_by,
    resource_changes: r.resource_changes,
    notifications: r.notifications,
  }
}

/** The vendor's event paging: 100 by default, at most 10,000 (more through an async job). */
const EVENT_PAGE = { default: 100, max: 10_000 }

/** Audit and agent events: read-only through the API (no update, no delete routes exist). */
export function registerEvents(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  api.get('/orgs/:org/events', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    const createdBy = f.string('created_by')
    const events = eventsMatching(db, org, {
      eventType: f.string('event_type'),
      severity: f.string('severity'),
      status: f.string('status'),
      since: f.string('timestamp[gte]'),
      until: f.string('timestamp[lte]'),
      // A VEN is its agent in events: both hrefs name it.
      createdBy: createdBy?.replace(/\/vens\//, '/agents/'),
    })
    return collection(req, reply, ctx.jobs, org, events, (rows) => rows.map(eventView), EVENT_PAGE)
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
