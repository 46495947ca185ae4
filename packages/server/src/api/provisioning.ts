import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import type { Database } from '../db/schema.js'
import { invalidOne, notFound, orNotFound } from '../errors.js'
import { HostPolicyError } from '../host-policy/recompute.js'
import { draftHref, draftObjectHref, policyVersionHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { versionView } from '../policy/object-view.js'
import { isPolicyType, SINGULAR } from '../policy/types.js'
import { changeSubsetOf } from '../provisioning/change-subset.js'
import { diffSnapshots, modifiedEntry } from '../provisioning/modified-objects.js'
import {
  pendingChange,
  planProvision,
  provisionDependencies,
} from '../provisioning/provision-plan.js'
import type { RevertPlan } from '../provisioning/revert-plan.js'
import { planRestore, planRevert, revertDependencies } from '../provisioning/revert-plan.js'
import { filtersOf } from '../query/query-filters.js'
import type { Db } from '../stores/db.js'
import { recordEvent } from '../stores/events.js'
import {
  activateDraft,
  deleteObject,
  insertObject,
  markDeleted,
  policyObjects,
  setDraft,
} from '../stores/policy-objects.js'
import {
  findVersion,
  insertVersion,
  latestVersion,
  listVersions,
  setWorkloadsAffected,
  versionModified,
  versionSnapshot,
} from '../stores/versions.js'
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'
import type { Transaction } from 'kysely'

/** A provision's body: its message and, optionally, the draft hrefs it takes (the subset). */
function provisionRequest(body: Doc): { message: string; wanted: Set<string> } {
  const c = new Checker()
  c.only(body, '$', ['update_description', 'commit_message', 'change_subset'])
  const message =
    c.string(body, 'update_description', '$', { max: 500 }) ??
    c.string(body, 'commit_message', '$', { max: 500 }) ??
    ''
  const wanted = changeSubsetOf(c, body.change_subset, '$.change_subset') ?? new Set<string>()
  c.done()
  return { message, wanted }
}

/** A policy version named in a path: a provisioned number (404 otherwise). */
function versionNumber(org: number, v: string): number {
  if (!/^\d+$/.test(v)) throw notFound(policyVersionHref(org, v))
  return Number(v)
}

/** Pending changes, policy versions, provisioning, and going back: revert and restore. */
export function registerProvisioning(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  /** The vendor's item fields, and Palisade's `draft` and `active` copies. */
  api.get('/orgs/:org/sec_policy/pending', async (req, reply) => {
    const org = orgOf(req)
    const perType = filtersOf(req).int('max_results') ?? 500
    const out: Record<string, Doc[]> = {}
    let total = 0
    for (const r of await policyObjects(db, org)) {
      const change = pendingChange(r)
      if (change === null) continue
      total++
      const list = (out[r.type] ??= [])
      if (list.length >= perType) continue
      const doc = r.draft ?? r.active
      list.push({
        href: draftObjectHref(org, r.type, r.id),
        update_type: change,
        name: typeof doc?.name === 'string' ? doc.name : null,
        updated_at: typeof doc?.updated_at === 'string' ? doc.updated_at : r.updated_at,
        updated_by: isObj(doc?.updated_by) ? { href: doc.updated_by.href } : null,
        caps: ['write', 'provision'],
        draft: r.draft_deleted ? null : r.draft,
        active: r.active,
      })
    }
    return json(reply.header('x-total-count', String(total)), 200, out)
  })

  /** Reverts every pending change: the draft becomes the active policy again. */
  api.delete('/orgs/:org/sec_policy/pending', async (req, reply) => {
    const org = orgOf(req)
    await db.transaction().execute(async (tx) => {
      await applyRevert(
        tx,
        req,
        org,
        planRevert(org, await policyObjects(tx, org), 'all'),
        'revert',
      )
    })
    return reply.code(204).send()
  })

  /** Reverts the pending changes of `change_subset`, if the draft left stays whole. */
  api.put('/orgs/:org/sec_policy/delete', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['change_subset'])
    const wanted = changeSubsetOf(c, body.change_subset, '$.change_subset')
    if (body.change_subset === undefined) c.fail('$.change_subset', 'is required')
    else if (wanted?.size === 0)
      c.fail(
        '$.change_subset',
        'names nothing; to revert every pending change, DELETE /sec_policy/pending',
      )
    c.done()
    await db.transaction().execute(async (tx) => {
      const plan = planRevert(org, await policyObjects(tx, org), wanted ?? new Set())
      await applyRevert(tx, req, org, plan, 'revert')
    })
    return reply.code(204).send()
  })

  /** Makes a revert (or a restore) in the store, with its audit event. */
  async function applyRevert(
    tx: Transaction<Database>,
    req: FastifyRequest,
    org: number,
    plan: RevertPlan,
    kind: 'revert' | 'restore',
    version?: number,
  ): Promise<void> {
    const t = now()
    for (const e of plan.edits) {
      if (e.kind === 'drop') await deleteObject(tx, e.row)
      else if (e.kind === 'set_draft') await setDraft(tx, e.row, e.draft)
      else if (e.kind === 'mark_deleted') await markDeleted(tx, e.row)
      else
        await insertObject(tx, {
          org_id: org,
          type: e.type,
          id: e.id,
          draft: e.draft,
          active: null,
          updated_at: t,
        })
    }
    if (plan.changes.length === 0) return
    await recordEvent(tx, org, {
      event_type: `sec_policy.${kind}`,
      created_by: userActor(req),
      resource_changes: plan.changes.map((c) =>
        resourceChange(c.resource, c.href, c.change, c.before, c.after),
      ),
      ...(version !== undefined && {
        notifications: [{ notification_type: `sec_policy.${kind}`, info: { version } }],
      }),
    })
  }

  api.get('/orgs/:org/sec_policy', async (req, reply) => {
    const org = orgOf(req)
    return collection(req, reply, ctx.jobs, org, (await listVersions(db, org)).map(versionView))
  })

  api.get('/orgs/:org/sec_policy/:v', async (req, reply) => {
    const org = orgOf(req)
    const v = versionNumber(org, (req.params as { v: string }).v)
    const row = orNotFound(await findVersion(db, org, v), policyVersionHref(org, v))
    return json(reply, 200, versionView(row))
  })

  /** What a version changed (`draft`: what is pending; `active`: the latest version). */
  api.get('/orgs/:org/sec_policy/:pv/modified_objects', async (req, reply) => {
    const org = orgOf(req)
    const pv = (req.params as { pv: string }).pv
    if (pv === 'draft') {
      const t = now()
      const by = userActor(req).user
      const pending = (await policyObjects(db, org)).flatMap((r) => {
        const change = pendingChange(r)
        return change === null
          ? []
          : [
              modifiedEntry(
                {
                  resource: SINGULAR[r.type],
                  href: draftObjectHref(org, r.type, r.id),
                  change,
                  before: r.active,
                  after: r.draft_deleted ? undefined : r.draft,
                },
                { by: { href: by.href }, at: t },
              ),
            ]
      })
      return collection(req, reply, ctx.jobs, org, pending)
    }
    const v = pv === 'active' ? await latestVersion(db, org) : versionNumber(org, pv)
    const row = orNotFound(await findVersion(db, org, v), policyVersionHref(org, pv))
    return collection(req, reply, ctx.jobs, org, await modifiedIn(db, org, v, row))
  })

  /** A version's changes: as its provision recorded them, or found from the version before. */
  async function modifiedIn(
    d: Db,
    org: number,
    v: number,
    row: { created_at: string; created_by: Doc },
  ) {
    const recorded = await versionModified(d, org, v)
    if (recorded) return recorded
    const before = v > 1 ? ((await versionSnapshot(d, org, v - 1)) ?? {}) : {}
    const after = (await versionSnapshot(d, org, v)) ?? {}
    const by = typeof row.created_by.href === 'string' ? row.created_by.href : ''
    return diffSnapshots(org, before, after, { by: { href: by }, at: row.created_at })
  }

  /** What a provision (`commit`) or a revert of a change subset must also take. */
  api.post('/orgs/:org/sec_policy/:pv/dependencies', async (req, reply) => {
    const org = orgOf(req)
    if ((req.params as { pv: string }).pv !== 'draft')
      throw invalidOne(
        'policy_version_read_only',
        'dependencies are of pending changes: ask about /sec_policy/draft',
      )
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['operation', 'change_subset'])
    const op = c.oneOf(body, 'operation', '$', ['commit', 'revert'], { required: true })
    const wanted = changeSubsetOf(c, body.change_subset, '$.change_subset')
    if (body.change_subset === undefined) c.fail('$.change_subset', 'is required')
    c.done()
    const rows = await policyObjects(db, org)
    const deps =
      op === 'revert'
        ? revertDependencies(org, rows, wanted ?? new Set())
        : provisionDependencies(org, rows, wanted ?? new Set())
    /** `{<type>: {href}}`: an href's object type, as the vendor names one object of it. */
    const typed = (href: string) => {
      const type = draftHref(href).split('/')[5] ?? ''
      return isPolicyType(type) ? SINGULAR[type] : type
    }
    return json(
      reply,
      201,
      deps.map((d) => ({
        dependency: { [typed(d.dependency)]: { href: d.dependency } },
        required_by: d.required_by.reduce<Record<string, { href: string }[]>>((acc, h) => {
          ;(acc[typed(h)] ??= []).push({ href: h })
          return acc
        }, {}),
      })),
    )
  })

  /**
   * Makes the draft what an earlier version was (a provision then makes it active): objects
   * as the version held them, the others deleted. Only over a draft with nothing pending.
   */
  api.post('/orgs/:org/sec_policy/:v/restore', async (req, reply) => {
    const org = orgOf(req)
    const v = versionNumber(org, (req.params as { v: string }).v)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', [])
    c.done()
    const snapshot = orNotFound(await versionSnapshot(db, org, v), policyVersionHref(org, v))
    await db.transaction().execute(async (tx) => {
      const plan = planRestore(org, await policyObjects(tx, org), snapshot, v)
      if (plan.edits.length === 0)
        throw invalidOne('nothing_to_restore', `the draft is version ${v} already`)
      await applyRevert(tx, req, org, plan, 'restore', v)
    })
    const pending = (await policyObjects(db, org)).filter((r) => pendingChange(r) !== null)
    return json(reply, 201, {
      href: policyVersionHref(org, 'draft'),
      restored_version: v,
      pending: pending.map((r) => ({
        href: draftObjectHref(org, r.type, r.id),
        update_type: pendingChange(r),
      })),
    })
  })

  api.post('/orgs/:org/sec_policy', async (req, reply) => {
    const org = orgOf(req)
    const { message, wanted } = provisionRequest(bodyObject(req))
    const provision = async (tx: Db) => {
      const plan = planProvision(org, await policyObjects(tx, org), wanted)
      for (const r of plan.chosen) {
        if (r.draft_deleted) await deleteObject(tx, r)
        else await activateDraft(tx, r)
      }
      const v = (await latestVersion(tx, org)) + 1
      const at = now()
      const by = userActor(req).user
      await insertVersion(tx, {
        org_id: org,
        version: v,
        commit_message: message,
        created_at: at,
        created_by: by,
        snapshot: plan.snapshot,
        object_counts: plan.counts,
        modified: plan.changes.map((c) => modifiedEntry(c, { by: { href: by.href }, at })),
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
    }
    // The version commits with the host policies it makes, or not at all.
    const { value: version, changed } = await ctx.hostPolicies
      .changeWithRecompute(org, provision)
      .catch((e: Error) => {
        if (!(e instanceof HostPolicyError)) throw e
        throw invalidOne(
          'provision_failed',
          `${e.message}; nothing was provisioned: correct the policy object it names and provision again`,
        )
      })
    await setWorkloadsAffected(db, org, version, changed)
    const row = orNotFound(await findVersion(db, org, version), policyVersionHref(org, version))
    return json(reply, 201, versionView(row))
  })
}
