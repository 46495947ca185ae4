import type { FastifyInstance } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid } from '../crypto.js'
import { invalidOne, notFound } from '../errors.js'
import { draftHref, draftObjectHref, policyObjectHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { usageOf } from '../labels/label-usage.js'
import { usageSources } from '../labels/usage-sources.js'
import { policyObjectMatches } from '../query/policy-object-filters.js'
import { filtersOf } from '../query/query-filters.js'
import { draftObject, draftOnly, edited, refIndex } from '../policy/draft-edits.js'
import { inlineRules } from '../policy/inline-rules.js'
import { objectView } from '../policy/object-view.js'
import { checkPolicyObject } from '../policy/policy-checks.js'
import { usersOf } from '../policy/references.js'
import { OBJECT_TYPES, SINGULAR, UUID_TYPES } from '../policy/types.js'
import { objectsInVersion } from '../policy/version-objects.js'
import { recordEvent } from '../stores/events.js'
import {
  deleteObject,
  insertObject,
  markDeleted,
  nextObjectId,
  policyObjects,
  saveDraft,
} from '../stores/policy-objects.js'
import { serviceBindings } from '../stores/service-bindings.js'
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'

/** Policy objects of every type with many (all but the firewall settings), in any version. */
export function registerPolicyObjects(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  for (const type of OBJECT_TYPES) {
    api.get(`/orgs/:org/sec_policy/:pv/${type}`, async (req, reply) => {
      const org = orgOf(req)
      const pv = (req.params as { pv: string }).pv
      const f = filtersOf(req)
      const rows = (await objectsInVersion(db, org, pv, type)).filter(({ doc }) =>
        policyObjectMatches(f, type, doc),
      )
      return collection(req, reply, ctx.jobs, org, rows, async (page) => {
        const views = page.map((r) => objectView(org, pv, type, r.id, r.doc, r.update))
        if (f.bool('usage') !== true) return views
        const src = await usageSources(db, org)
        return views.map((v) => ({ ...v, usage: usageOf(draftHref(String(v.href)), src) }))
      })
    })

    api.get(`/orgs/:org/sec_policy/:pv/${type}/:id`, async (req, reply) => {
      const org = orgOf(req)
      const { pv, id } = req.params as { pv: string; id: string }
      const r = (await objectsInVersion(db, org, pv, type)).find((x) => x.id === id)
      if (!r) throw notFound(policyObjectHref(org, pv, type, id))
      return json(reply, 200, objectView(org, pv, type, r.id, r.doc, r.update))
    })

    api.post(`/orgs/:org/sec_policy/:pv/${type}`, async (req, reply) => {
      const org = orgOf(req)
      draftOnly(req)
      const body = bodyObject(req)
      const out = await db.transaction().execute(async (tx) => {
        const c = new Checker()
        const { fields, inline } = checkPolicyObject(c, type, body, await refIndex(tx, org), false)
        const id = UUID_TYPES.includes(type) ? newUuid() : await nextObjectId(tx, org, type)
        const rules = inlineRules(c, draftObjectHref(org, type, id), {}, inline ?? {})
        c.done()
        const t = now()
        const stored: Doc = {
          description: '',
          external_data_set: null,
          external_data_reference: null,
          ...fields,
          ...(type === 'rule_sets' && {
            enabled: fields.enabled ?? true,
            scopes: fields.scopes ?? [],
            ip_tables_rules: [],
            rules: rules.rules ?? [],
            deny_rules: rules.deny_rules ?? [],
          }),
          created_at: t,
          updated_at: t,
          created_by: userActor(req).user,
        }
        await insertObject(tx, {
          org_id: org,
          type,
          id,
          draft: stored,
          active: null,
          updated_at: t,
        })
        const v = objectView(org, 'draft', type, id, stored, 'create')
        await recordEvent(tx, org, {
          event_type: `${SINGULAR[type]}.create`,
          created_by: userActor(req),
          resource_changes: [
            resourceChange(SINGULAR[type], String(v.href), 'create', undefined, stored),
          ],
        })
        return v
      })
      return json(reply, 201, out)
    })

    api.put(`/orgs/:org/sec_policy/:pv/${type}/:id`, async (req, reply) => {
      const org = orgOf(req)
      draftOnly(req)
      const id = (req.params as { id: string }).id
      const body = bodyObject(req)
      await db.transaction().execute(async (tx) => {
        const row = await draftObject(tx, org, type, id)
        const href = draftObjectHref(org, type, id)
        const c = new Checker()
        // clients send back the href they read, in whichever version they read it
        if (
          body.href !== undefined &&
          (typeof body.href !== 'string' || draftHref(body.href) !== href)
        )
          c.fail('$.href', `must name this object, ${href}, or be left out`)
        const { fields, inline } = checkPolicyObject(c, type, body, await refIndex(tx, org), true)
        const rules = inlineRules(c, href, row.draft, inline ?? {})
        c.done()
        const after = edited(row.draft, { ...fields, ...rules }, req)
        await saveDraft(tx, row, after)
        await recordEvent(tx, org, {
          event_type: `${SINGULAR[type]}.update`,
          created_by: userActor(req),
          resource_changes: [resourceChange(SINGULAR[type], href, 'update', row.draft, after)],
        })
      })
      return reply.code(204).send()
    })

    api.delete(`/orgs/:org/sec_policy/:pv/${type}/:id`, async (req, reply) => {
      const org = orgOf(req)
      draftOnly(req)
      const id = (req.params as { id: string }).id
      await db.transaction().execute(async (tx) => {
        const row = await draftObject(tx, org, type, id)
        const href = draftObjectHref(org, type, id)
        const users = usersOf(href, await policyObjects(tx, org))
        if (users.length > 0)
          throw invalidOne(
            'object_in_use',
            `${href} is used by ${users.join(', ')}; remove those uses first`,
          )
        if (type === 'virtual_services') {
          const bound = await serviceBindings(tx, org, { virtualServiceId: id })
          if (bound.length > 0)
            throw invalidOne(
              'object_in_use',
              `${href} is bound to ${bound.length} workload(s); delete its service bindings first`,
            )
        }
        // Never provisioned: gone at once. Provisioned: a pending delete until the next provision.
        if (row.active === null) await deleteObject(tx, row)
        else await markDeleted(tx, row)
        await recordEvent(tx, org, {
          event_type: `${SINGULAR[type]}.delete`,
          created_by: userActor(req),
          resource_changes: [resourceChange(SINGULAR[type], href, 'delete', row.draft)],
        })
      })
      return reply.code(204).send()
    })
  }
}
