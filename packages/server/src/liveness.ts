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
 *
 * Each agent is checked on its own: one whose stored row cannot be read or written does not
 * stop the check of the others; the check then rejects, naming every agent it could not check.
 */
export async function checkHeartbeats(db: Kysely<Database>, now: Date): Promise<string[]> {
  const changed: string[] = []
  const failed: Error[] = []
  const settings = new Map<number, WorkloadSettings>()
  for (const a of await heartbeats(db)) {
    if (!a.last_heartbeat_at || a.status === 'suspended' || a.status.startsWith('unpairing:'))
      continue
    try {
      let s = settings.get(a.org_id)
      if (!s) {
        s = workloadSettingsOf(await settingsOf(db, a.org_id, WORKLOAD_SETTINGS))
        settings.set(a.org_id, s)
      }
      if (await checkAgent(db, a, s, now)) changed.push(a.id)
    } catch (e) {
      failed.push(new Error(`agent ${a.id}: ${(e as Error).message}`))
    }
  }
  if (failed.length > 0)
    throw new AggregateError(
      failed,
      `the heartbeat check could not check ${failed.map((e) => e.message).join('; ')}`,
    )
  return changed
}

type Heartbeat = Awaited<ReturnType<typeof heartbeats>>[number]

/** Checks one agent's heartbeat; true when it changed the agent. */
async function checkAgent(
  db: Kysely<Database>,
  a: Heartbeat,
  s: WorkloadSettings,
  now: Date,
): Promise<boolean> {
  const labels: unknown = JSON.parse(a.labels)
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string'))
    throw new Error("its workload's labels are not a list of hrefs")
  const t = thresholdsFor(s, { labels, venType: a.agent_type })
  const lastBeat = Date.parse(a.last_heartbeat_at ?? '')
  if (Number.isNaN(lastBeat))
    throw new Error(`its last heartbeat "${a.last_heartbeat_at}" is not a time`)
  const silent = (now.getTime() - lastBeat) / 1000
  const goodbye =
    a.last_goodbye_at !== null &&
    a.last_heartbeat_at !== null &&
    a.last_goodbye_at >= a.last_heartbeat_at
      ? (now.getTime() - Date.parse(a.last_goodbye_at)) / 1000
      : undefined
  const offline =
    goodbye === undefined
      ? t.offlineSeconds !== undefined && silent > t.offlineSeconds
      : t.goodbyeSeconds !== undefined && goodbye > t.goodbyeSeconds
  const warned = goodbye === undefined && t.warnSeconds !== undefined && silent > t.warnSeconds
  if (!warned && !offline) return false
  const conditions = a.health.conditions ?? []
  const flagged = conditions.some((c) => c.type === 'agent.missed_heartbeats')
  if ((flagged || !warned) && (a.status === 'offline') === offline) return false
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
  return true
}
