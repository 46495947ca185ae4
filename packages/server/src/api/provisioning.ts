import type { FastifyInstance } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { notFound, orNotFound } from '../errors.js'
import { draftHref, draftObjectHref, policyVersionHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { versionView } from '../policy/object-view.js'
import { POLICY_TYPES } from '../policy/types.js'
import { pendingChange, planProvision } from '../provisioning/provision-plan.js'
import { recordEvent } from '../stores/events.js'
import { activateDraft, deleteObject, policyObjects } from '../stores/policy-objects.js'
import {
  findVersion,
  insertVersion,
  latestVersion,
  listVersions,
  setWorkloadsAffected,
} from '../stores/versions.js'
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'

/** A provision's body: its message and, optionally, the draft hrefs it takes (the subset). */
function provisionRequest(body: Doc): { message: string; wanted: Set<string> } {
  const c = new Checker()
  c.only(body, '$', ['update_description', 'commit_message', 'change_subset'])
  const message =
    c.string(body, 'update_description', '$', { max: 500 }) ??
    c.string(body, 'commit_message', '$', { max: 500 }) ??
    ''
  const subset =
    body.change_subset === undefined ? undefined : c.object(body.change_subset, '$.change_subset')
  const wanted = new Set<string>()
  for (const [type, list] of Object.entries(subset ?? {})) {
    if (!(POLICY_TYPES as readonly string[]).includes(type)) {
      c.fail(`$.change_subset.${type}`, `not a provisionable type; use ${POLICY_TYPES.join(', ')}`)
      continue
    }
    if (!Array.isArray(list)) c.fail(`$.change_subset.${type}`, 'must be a list of {"href": ...}')
    else
      list.forEach((x, i) => {
        const href = c.hrefRef(x, `$.change_subset.${type}[${i}]`)
        if (href !== undefined) wanted.add(draftHref(href))
      })
  }
  c.done()
  return { message, wanted }
}

/** Pending changes, policy versions, and provisioning: the draft's changes made active. */
export function registerProvisioning(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  api.get('/orgs/:org/sec_policy/pending', async (req, reply) => {
    const org = orgOf(req)
    const out: Record<string, Doc[]> = {}
    for (const r of await policyObjects(db, org)) {
      const change = pendingChange(r)
      if (change === null) continue
      ;(out[r.type] ??= []).push({
        href: draftObjectHref(org, r.type, r.id),
        update_type: change,
        draft: r.draft_deleted ? null : r.draft,
        active: r.active,
      })
    }
    return json(reply, 200, out)
  })

  api.get('/orgs/:org/sec_policy', async (req, reply) => {
    const org = orgOf(req)
    return collection(req, reply, ctx.jobs, org, (await listVersions(db, org)).map(versionView))
  })

  api.get('/orgs/:org/sec_policy/:v', async (req, reply) => {
    const org = orgOf(req)
    const v = (req.params as { v: string }).v
    if (!/^\d+$/.test(v)) throw notFound(policyVersionHref(org, v))
    const row = orNotFound(await findVersion(db, org, Number(v)), policyVersionHref(org, v))
    return json(reply, 200, versionView(row))
  })

  api.post('/orgs/:org/sec_policy', async (req, reply) => {
    const org = orgOf(req)
    const { message, wanted } = provisionRequest(bodyObject(req))
    const version = await db.transaction().execute(async (tx) => {
      const plan = planProvision(org, await policyObjects(tx, org), wanted)
      for (const r of plan.chosen) {
        if (r.draft_deleted) await deleteObject(tx, r)
        else await activateDraft(tx, r)
      }
      const v = (await latestVersion(tx, org)) + 1
      await insertVersion(tx, {
        org_id: org,
        version: v,
        commit_message: message,
        created_at: now(),
        created_by: userActor(req).user,
        snapshot: plan.snapshot,
        object_counts: plan.counts,
      })
      await recordEvent(tx, org, {
        event_type: 'sec_policy.create',
        created_by: userActor(req),
        resource_changes: plan.changes.map((c) =>
          resourceChange(c.resource, c.href, c.change, c.before, c.after),
        ),
        notifications: [
          { notification_type: 'sec_policy.create', info: { version: v, commit_message: message } },
        ],
      })
      return v
    })
    const affected = await ctx.hostPolicies.recompute(org)
    await setWorkloadsAffected(db, org, version, affected)
    const row = orNotFound(await findVersion(db, org, version), policyVersionHref(org, version))
    return json(reply, 201, versionView(row))
  })
}
