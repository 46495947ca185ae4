import type { FastifyInstance } from 'fastify'
import { resourceChange } from '../audit.js'
import type { AppContext } from '../context.js'
import { notFound } from '../errors.js'
import { draftObjectHref, policyObjectHref } from '../hrefs.js'
import { bodyObject, json, orgOf, userActor } from '../http.js'
import { draftObject, draftOnly, edited, refIndex } from '../policy/draft-edits.js'
import { objectView } from '../policy/object-view.js'
import { checkFirewallSettings } from '../policy/policy-checks.js'
import { objectsInVersion } from '../policy/version-objects.js'
import { recordEvent } from '../stores/events.js'
import { saveDraft } from '../stores/policy-objects.js'
import { Checker } from '../validate.js'

/** The firewall settings: one per org, in any version; updated in the draft. */
export function registerFirewallSettings(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  api.get('/orgs/:org/sec_policy/:pv/firewall_settings', async (req, reply) => {
    const org = orgOf(req)
    const pv = (req.params as { pv: string }).pv
    const r = (await objectsInVersion(db, org, pv, 'firewall_settings'))[0]
    if (!r) throw notFound(policyObjectHref(org, pv, 'firewall_settings', ''))
    return json(reply, 200, objectView(org, pv, 'firewall_settings', r.id, r.doc, r.update))
  })

  api.put('/orgs/:org/sec_policy/:pv/firewall_settings', async (req, reply) => {
    const org = orgOf(req)
    draftOnly(req)
    const body = bodyObject(req)
    await db.transaction().execute(async (tx) => {
      const row = await draftObject(tx, org, 'firewall_settings', 'firewall_settings')
      const c = new Checker()
      const fields = checkFirewallSettings(c, body, await refIndex(tx, org))
      c.done()
      const after = edited(row.draft, fields, req)
      await saveDraft(tx, row, after)
      await recordEvent(tx, org, {
        event_type: 'firewall_settings.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'firewall_settings',
            draftObjectHref(org, 'firewall_settings', ''),
            'update',
            row.draft,
            after,
          ),
        ],
      })
    })
    return reply.code(204).send()
  })
}
