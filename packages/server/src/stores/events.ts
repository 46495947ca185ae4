/**
 * The event log: audit events of every change made through the API (written in the same
 * transaction as the change), sign-ins, and what agents report. Events are never updated or
 * deleted.
 */
import type { Selectable } from 'kysely'
import { sql } from 'kysely'
import { DEFAULT_EVENT_SETTINGS, minSeveritiesDropping } from '../events/event-settings.js'
import type { Actor } from '../audit.js'
import type { FailureSummary } from '../auth-failures.js'
import { now } from '../clock.js'
import { newUuid } from '../crypto.js'
import type { Database } from '../db/schema.js'
import type { Doc } from '../validate.js'
import type { StoredCollection } from './collection.js'
import { countOf } from './collection.js'
import type { Db } from './db.js'
import { settingOfOrgs } from './org-settings.js'

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

/**
 * Records an event (idempotent on uuid: an agent re-sending a batch creates no duplicates),
 * unless the org's event settings drop events of its severity (`audit_event_min_severity`):
 * the insert itself checks, so recording costs one statement.
 */
export async function recordEvent(db: Db, org: number, e: EventInput): Promise<void> {
  const severity = e.severity ?? 'info'
  const dropping = minSeveritiesDropping(severity).map((s) => JSON.stringify(s))
  const row = {
    uuid: e.uuid ?? newUuid(),
    org_id: org,
    event_type: e.event_type,
    severity,
    status: e.status === undefined ? 'success' : e.status,
    timestamp: e.timestamp ?? now(),
    created_by: JSON.stringify(e.created_by),
    resource_changes: JSON.stringify(e.resource_changes ?? []),
    notifications: JSON.stringify(e.notifications ?? []),
    agent_id: e.agent_id ?? null,
  }
  const columns = Object.keys(row) as (keyof typeof row)[]
  await db
    .insertInto('events')
    .columns(columns)
    .expression(
      db
        // PostgreSQL types a bare parameter as text: the one integer column is cast.
        .selectNoFrom(
          columns.map((k) =>
            (k === 'org_id' ? sql`cast(${row[k]} as integer)` : sql`${row[k]}`).as(k),
          ),
        )
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('org_settings')
                .select('org_id')
                .where('org_id', '=', org)
                .where('name', '=', 'audit_event_min_severity')
                .where('value', 'in', dropping.length > 0 ? dropping : ['']),
            ),
          ),
        ),
    )
    .onConflict((oc) => oc.column('uuid').doNothing())
    .execute()
}

/**
 * The audit events of failed authentication, one per source, kind and minute (see
 * AuthFailures): how often, when, and a few of the user names tried.
 */
export async function recordAuthFailures(
  db: Db,
  failures: readonly FailureSummary[],
): Promise<void> {
  for (const f of failures)
    await recordEvent(db, 1, {
      event_type: f.event_type,
      severity: 'warning',
      status: 'failure',
      created_by: { system: {} },
      timestamp: f.last_at,
      notifications: [
        {
          notification_type: f.event_type,
          info: {
            src_ip: f.src_ip,
            count: f.count,
            first_at: f.first_at,
            last_at: f.last_at,
            usernames: f.usernames,
            reasons: f.reasons,
          },
        },
      ],
    })
}

/** Deletes the events of each org older than its retention; returns how many. */
export async function pruneEvents(db: Db, nowMs: number): Promise<number> {
  const orgs = await db.selectFrom('events').select('org_id').distinct().execute()
  const retention = await settingOfOrgs(db, 'audit_event_retention_seconds')
  let deleted = 0
  for (const { org_id } of orgs) {
    const seconds =
      (retention.get(org_id) as number | undefined) ??
      DEFAULT_EVENT_SETTINGS.audit_event_retention_seconds
    const cutoff = new Date(nowMs - seconds * 1000).toISOString()
    const r = await db
      .deleteFrom('events')
      .where('org_id', '=', org_id)
      .where('timestamp', '<', cutoff)
      .executeTakeFirst()
    deleted += Number(r.numDeletedRows)
  }
  return deleted
}

export interface EventFilter {
  readonly eventType?: string | undefined
  readonly severity?: string | undefined
  /** `success`, `failure`, or `nil` for events without a status. */
  readonly status?: string | undefined
  /** `system`, or the href of the user or agent that made the event. */
  readonly createdBy?: string | undefined
  /** ISO times, inclusive. */
  readonly since?: string | undefined
  readonly until?: string | undefined
}

/** The org's events that pass the filter, newest first. */
export function eventsMatching(db: Db, org: number, f: EventFilter): StoredCollection<EventRow> {
  let query = db.selectFrom('events').selectAll().where('org_id', '=', org)
  if (f.eventType) query = query.where('event_type', '=', f.eventType)
  if (f.severity) query = query.where('severity', '=', f.severity)
  if (f.status === 'nil') query = query.where('status', 'is', null)
  else if (f.status) query = query.where('status', '=', f.status)
  if (f.createdBy === 'system') query = query.where('created_by', 'like', '{"system":%')
  else if (f.createdBy !== undefined) {
    // The actor's JSON names its href exactly once, as "href":"...".
    const text = JSON.stringify({ href: f.createdBy }).slice(1, -1)
    query = query.where(
      sql<boolean>`created_by like ${`%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} escape '\\'`,
    )
  }
  if (f.since !== undefined) query = query.where('timestamp', '>=', f.since)
  if (f.until !== undefined) query = query.where('timestamp', '<=', f.until)
  const read = async (limit: number, before?: number) =>
    (
      await (before === undefined ? query : query.where('seq', '<', before))
        .orderBy('seq', 'desc')
        .limit(limit)
        .execute()
    ).map(decode)
  return {
    count: () => countOf(query),
    read: (limit) => read(limit),
    // Each page starts below the last one's seq: no offset to skip over.
    pages: async function* (size) {
      for (let page = await read(size); page.length > 0;) {
        yield page
        if (page.length < size) return
        page = await read(size, page[page.length - 1]?.seq)
      }
    },
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
