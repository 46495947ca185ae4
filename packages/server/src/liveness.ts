import type { Kysely } from 'kysely'
import type { Database } from './db/schema.js'
import { recordEvent } from './stores/events.js'
import { agentHref } from './hrefs.js'

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
  const agents = await db
    .selectFrom('agents')
    .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
    .select([
      'agents.id',
      'agents.org_id',
      'agents.status',
      'agents.health',
      'agents.last_heartbeat_at',
      'workloads.hostname',
    ])
    .execute()
  const changed: string[] = []
  for (const a of agents) {
    if (!a.last_heartbeat_at || a.status === 'suspended') continue
    const silent = (now.getTime() - Date.parse(a.last_heartbeat_at)) / 1000
    const health = JSON.parse(a.health) as { conditions?: { type: string }[] }
    const conditions = health.conditions ?? []
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
      await tx
        .updateTable('agents')
        .set({
          health: JSON.stringify({ ...health, conditions: next }),
          ...(offline && { status: 'offline' }),
        })
        .where('id', '=', a.id)
        .execute()
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
