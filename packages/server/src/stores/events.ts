/**
 * The event log: audit events of every change made through the API (written in the same
 * transaction as the change), sign-ins, and what agents report. Events are never updated or
 * deleted.
 */
import type { Selectable } from 'kysely'
import type { Actor } from '../audit.js'
import { now } from '../clock.js'
import { newUuid } from '../crypto.js'
import type { Database } from '../db/schema.js'
import type { Doc } from '../validate.js'
import type { StoredCollection } from './collection.js'
import { countOf } from './collection.js'
import type { Db } from './db.js'

export interface EventInput {
  readonly event_type: string
  readonly severity?: string
  readonly status?: 'success' | 'failure' | null
  readonly created_by: Actor
  readonly resource_changes?: readonly Doc[]
  readonly notifications?: readonly Doc[]
  readonly uuid?: string
  readonly timestamp?: string
  readonly agent_id?: string
}

/** An event as stored, its JSON columns read. */
export interface EventRow extends Omit<
  Selectable<Database['events']>,
  'created_by' | 'resource_changes' | 'notifications'
> {
  readonly created_by: Actor
  readonly resource_changes: Doc[]
  readonly notifications: Doc[]
}

const decode = (r: Selectable<Database['events']>): EventRow => ({
  ...r,
  created_by: JSON.parse(r.created_by) as Actor,
  resource_changes: JSON.parse(r.resource_changes) as Doc[],
  notifications: JSON.parse(r.notifications) as Doc[],
})

/** Records an event (idempotent on uuid: an agent re-sending a batch creates no duplicates). */
export async function recordEvent(db: Db, org: number, e: EventInput): Promise<void> {
  await db
    .insertInto('events')
    .values({
      uuid: e.uuid ?? newUuid(),
      org_id: org,
      event_type: e.event_type,
      severity: e.severity ?? 'info',
      status: e.status === undefined ? 'success' : e.status,
      timestamp: e.timestamp ?? now(),
      created_by: JSON.stringify(e.created_by),
      resource_changes: JSON.stringify(e.resource_changes ?? []),
      notifications: JSON.stringify(e.notifications ?? []),
      agent_id: e.agent_id ?? null,
    })
    .onConflict((oc) => oc.column('uuid').doNothing())
    .execute()
}

export interface EventFilter {
  readonly eventType?: string
  readonly severity?: string
  readonly status?: string
  /** ISO times, inclusive. */
  readonly since?: string
  readonly until?: string
}

/** The org's events that pass the filter, newest first. */
export function eventsMatching(db: Db, org: number, f: EventFilter): StoredCollection<EventRow> {
  let query = db.selectFrom('events').selectAll().where('org_id', '=', org)
  if (f.eventType) query = query.where('event_type', '=', f.eventType)
  if (f.severity) query = query.where('severity', '=', f.severity)
  if (f.status) query = query.where('status', '=', f.status)
  if (f.since !== undefined) query = query.where('timestamp', '>=', f.since)
  if (f.until !== undefined) query = query.where('timestamp', '<=', f.until)
  return {
    count: () => countOf(query),
    read: async (limit) => (await query.orderBy('seq', 'desc').limit(limit).execute()).map(decode),
  }
}

export async function findEvent(db: Db, org: number, uuid: string): Promise<EventRow | undefined> {
  const row = await db
    .selectFrom('events')
    .selectAll()
    .where('org_id', '=', org)
    .where('uuid', '=', uuid)
    .executeTakeFirst()
  return row && decode(row)
}
