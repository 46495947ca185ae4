import type { Kysely } from 'kysely'
import type { Database } from './db/schema.js'
import { agentHref } from './hrefs.js'
import { heartbeats, setAgentHealth } from './stores/agents.js'
import { recordEvent } from './stores/events.js'
import { settingsOf } from './stores/org-settings.js'
import type { WorkloadSettings } from './workloads/liveness-settings.js'
import {
  thresholdsFor,
  WORKLOAD_SETTINGS,
  workloadSettingsOf,
} from './workloads/liveness-settings.js'

/**
 * Marks agents that stopped sending heartbeats, by their org's workload settings (the vendor's
 * defaults: a warning after 15 minutes, offline after an hour): an `agent.missed_heartbeats`
 * condition and an event when the warning threshold passes, offline past the second. An agent
 * that said goodbye is not warned about; it goes offline once the goodbye timeout passes. `now`
 * is passed in so the check can be exercised at any moment. Returns the agents it changed.
 */
export async function checkHeartbeats(db: Kysely<Database>, now: Date): Promise<string[]> {
  const changed: string[] = []
  const settings = new Map<number, WorkloadSettings>()
  for (const a of await heartbeats(db)) {
    if (!a.last_heartbeat_at || a.status === 'suspended' || a.status.startsWith('unpairing:'))
      continue
    let s = settings.get(a.org_id)
    if (!s) {
      s = workloadSettingsOf(await settingsOf(db, a.org_id, WORKLOAD_SETTINGS))
      settings.set(a.org_id, s)
    }
    const t = thresholdsFor(s, { labels: a.labels, venType: a.agent_type })
    const silent = (now.getTime() - Date.parse(a.last_heartbeat_at)) / 1000
    const goodbye =
      a.last_goodbye_at !== null && a.last_goodbye_at >= a.last_heartbeat_at
        ? (now.getTime() - Date.parse(a.last_goodbye_at)) / 1000
        : undefined
    const offline =
      goodbye === undefined
        ? t.offlineSeconds !== undefined && silent > t.offlineSeconds
        : t.goodbyeSeconds !== undefined && goodbye > t.goodbyeSeconds
    const warned = goodbye === undefined && t.warnSeconds !== undefined && silent > t.warnSeconds
    if (!warned && !offline) continue
    const conditions = a.health.conditions ?? []
    const flagged = conditions.some((c) => c.type === 'agent.missed_heartbeats')
    if ((flagged || !warned) && (a.status === 'offline') === offline) continue
    const next =
      flagged || !warned
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
        event_type:
          goodbye === undefined
            ? 'system_task.agent_missed_heartbeats_check'
            : 'system_task.agent_offline_check',
        severity: 'warning',
        created_by: { system: {} },
        notifications: [
          {
            notification_type: goodbye === undefined ? 'agent.missed_heartbeats' : 'agent.goodbye',
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
