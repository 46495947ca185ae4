import type { Kysely } from 'kysely'
import type { Database } from './db/schema.js'
import { agentHref } from './hrefs.js'
import { heartbeats, setAgentHealth } from './stores/agents.js'
import { recordEvent } from './stores/events.js'

/** The vendor's defaults: a warning after 15 minutes without a heartbeat, offline after an hour. */
export const HEARTBEAT_THRESHOLDS = { warnSeconds: 15 * 60, offlineSeconds: 60 * 60 } as const

/**
 * Marks agents that stopped sending heartbeats: a `agent.missed_heartbeats` condition and an
 * event when the warning threshold passes, offline past the second. `now` is passed in so the
 * check can be exercised at any moment. Returns the agents it changed.
 */
export async function checkHeartbeats(
  db: Kysely<Database>,
  now: Date,
  t = HEARTBEAT_THRESHOLDS,
): Promise<string[]> {
  const changed: string[] = []
  for (const a of await heartbeats(db)) {
    if (!a.last_heartbeat_at || a.status === 'suspended') continue
    const silent = (now.getTime() - Date.parse(a.last_heartbeat_at)) / 1000
    const conditions = a.health.conditions ?? []
    const flagged = conditions.some((c) => c.type === 'agent.missed_heartbeats')
    const offline = silent > t.offlineSeconds
    if (silent <= t.warnSeconds || (flagged && (a.status === 'offline') === offline)) continue
    const next = flagged
      ? conditions
      : [
          ...conditions,
          {
            type: 'agent.missed_heartbeats',
            severity: 'warning',
            first_reported_timestamp: now.toISOString(),
          },
        ]
    await db.transaction().execute(async (tx) => {
      await setAgentHealth(tx, a.id, { ...a.health, conditions: next }, offline)
      await recordEvent(tx, a.org_id, {
        event_type: 'system_task.agent_missed_heartbeats_check',
        severity: 'warning',
        created_by: { system: {} },
        notifications: [
          {
            notification_type: 'agent.missed_heartbeats',
            info: {
              agent: agentHref(a.org_id, a.id),
              hostname: a.hostname,
              seconds_since_heartbeat: Math.round(silent),
              offline,
            },
          },
        ],
      })
    })
    changed.push(a.id)
  }
  return changed
}
