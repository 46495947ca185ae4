import type { FastifyInstance } from 'fastify'
import { resourceChange } from '../audit.js'
import type { AppContext } from '../context.js'
import { bodyObject, json, orgOf, userActor } from '../http.js'
import { EVENT_SETTINGS, checkEventSettings, eventSettingsOf } from '../events/event-settings.js'
import { recordEvent } from '../stores/events.js'
import { labelsByHref } from '../stores/labels.js'
import { saveSettings, settingsOf } from '../stores/org-settings.js'
import {
  checkWorkloadSettings,
  WORKLOAD_SETTINGS,
  workloadSettingsOf,
} from '../workloads/liveness-settings.js'

/** The org's settings: workload liveness (honoured by the heartbeat check) and the event log. */
export function registerOrgSettings(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const href = (org: number, name: string) => `/orgs/${org}/settings/${name}`

  api.get('/orgs/:org/settings/workloads', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, workloadSettingsOf(await settingsOf(db, org, WORKLOAD_SETTINGS)))
  })

  api.put('/orgs/:org/settings/workloads', async (req, reply) => {
    const org = orgOf(req)
    const values = checkWorkloadSettings(bodyObject(req), await labelsByHref(db, org))
    await db.transaction().execute(async (tx) => {
      const before = workloadSettingsOf(await settingsOf(tx, org, WORKLOAD_SETTINGS))
      await saveSettings(tx, org, values)
      await recordEvent(tx, org, {
        event_type: 'settings.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('settings', href(org, 'workloads'), 'update', before, {
            ...before,
            ...values,
          }),
        ],
      })
    })
    return reply.code(204).send()
  })

  api.get('/orgs/:org/settings/events', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, eventSettingsOf(await settingsOf(db, org, EVENT_SETTINGS)))
  })

  api.put('/orgs/:org/settings/events', async (req, reply) => {
    const org = orgOf(req)
    const values = checkEventSettings(bodyObject(req))
    await db.transaction().execute(async (tx) => {
      const before = eventSettingsOf(await settingsOf(tx, org, EVENT_SETTINGS))
      // Recorded before the new minimum severity applies, so raising it is itself in the log.
      await recordEvent(tx, org, {
        event_type: 'settings.update',
        severity: 'warning',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('settings', href(org, 'events'), 'update', before, {
            ...before,
            ...values,
          }),
        ],
      })
      await saveSettings(tx, org, values)
    })
    return reply.code(204).send()
  })
}
