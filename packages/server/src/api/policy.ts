import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Transaction } from 'kysely'
import type { AppContext } from '../context.js'
import type { Database } from '../db/schema.js'
import { invalid, invalidOne, notFound } from '../errors.js'
import { bodyObject, collection, json, orgOf, textMatches, userActor } from '../http.js'
import type { RefIndex } from '../policy-docs.js'
import { checkFirewallSettings, checkPolicyObject, checkRule } from '../policy-docs.js'
import { now } from '../clock.js'
import { resourceChange } from '../audit.js'
import { recordEvent } from '../stores/events.js'
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'
import {
  draftHref,
  isDraftObjectHref,
  policyObjectHref as objHref,
  policyVersionHref as base,
  ruleHref,
  workloadHref,
} from '../hrefs.js'
import type { PolicyType, RuleKind } from '../policy/types.js'
import { OBJECT_TYPES, POLICY_TYPES, RULE_FIELDS, RULE_KINDS, SINGULAR } from '../policy/types.js'
import { labelsByHref } from '../stores/labels.js'

type Row = Database['policy_objects']
/** The columns a policy version shows (its snapshot stays in the store). */
const VERSION_COLUMNS = [
  'org_id',
  'version',
  'commit_message',
  'created_at',
  'created_by',
  'object_counts',
  'workloads_affected',
] as const

/** Writes fields of one policy object's row (draft, active or the pending-delete mark). */
function setRow(
  tx: Transaction<Database>,
  org: number,
  type: string,
  id: string,
  fields: Partial<Row>,
): Promise<unknown> {
  return tx
    .updateTable('policy_objects')
    .set({ ...fields })
    .where('org_id', '=', org)
    .where('type', '=', type)
    .where('id', '=', id)
    .execute()
}

/** A draft after an edit: the old fields, the new ones, and who changed it when. */
const edited = (before: Doc, fields: Doc, req: FastifyRequest): Doc => ({
  ...before,
  ...fields,
  updated_at: now(),
  updated_by: userActor(req).user,
})

function updateType(r: Row): 'create' | 'update' | 'delete' | null {
  if (r.draft_deleted) return 'delete'
  if (r.active === null) return 'create'
  return r.draft === r.active ? null : 'update'
}

/** An object as the API shows it in one policy version; rule hrefs follow their rule set. */
function view(
  org: number,
  pv: string,
  type: PolicyType,
  id: string,
  doc: Doc,
  update?: 'create' | 'update' | 'delete' | null,
): Doc {
  const href = objHref(org, pv, type, id)
  const out: Doc = { href, ...doc }
  if (type === 'rule_sets') {
    for (const kind of Object.keys(RULE_FIELDS) as RuleKind[]) {
      const field = RULE_FIELDS[kind]
      out[field] = ((doc[field] as Doc[]) ?? []).map(({ id: rid, ...r }) => ({
        href: ruleHref(href, kind, rid),
        ...r,
      }))
    }
  }
  if (pv === 'draft') out.update_type = update ?? null
  return out
}

async function refIndex(
  tx: Transaction<Database> | AppContext['db'],
  org: number,
): Promise<RefIndex> {
  const objs = await tx
    .selectFrom('policy_objects')
    .select(['type', 'id', 'draft_deleted'])
    .where('org_id', '=', org)
    .execute()
  const wls = await tx.selectFrom('workloads').select('id').where('org_id', '=', org).execute()
  return {
    labels: await labelsByHref(tx, org),
    drafts: new Set(
      objs
        .filter((o) => !o.draft_deleted)
        .map((o) => objHref(org, 'draft', o.type as PolicyType, o.id)),
    ),
    workloads: new Set(wls.map((w) => workloadHref(org, w.id))),
  }
}

/** Every href an object refers to (labels, groups, lists, services, workloads). */
function referencesOf(doc: Doc): string[] {
  const out: string[] = []
  const walk = (x: unknown, key?: string) => {
    if (Array.isArray(x)) x.forEach((y) => walk(y))
    else if (isObj(x)) for (const [k, v] of Object.entries(x)) walk(v, k)
    else if (key === 'href' && typeof x === 'string') out.push(x)
  }
  walk(doc)
  return out
}

export function registerPolicy(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx

  /** Rows of one type as one policy version holds them: draft, active or a provisioned number. */
  async function objectsIn(
    org: number,
    pv: string,
    type: PolicyType,
  ): Promise<{ id: string; doc: Doc; update?: ReturnType<typeof updateType> }[]> {
    if (pv === 'draft' || pv === 'active') {
      const rows = await db
        .selectFrom('policy_objects')
        .selectAll()
        .where('org_id', '=', org)
        .where('type', '=', type)
        .execute()
      return rows
        .filter((r) => (pv === 'draft' ? r.draft !== null : r.active !== null))
        .map((r) => ({
          id: r.id,
          doc: JSON.parse((pv === 'draft' ? (r.draft ?? r.active) : r.active) ?? '{}') as Doc,
          update: updateType(r),
        }))
        .sort((a, b) => Number(a.id) - Number(b.id))
    }
    if (!/^\d+$/.test(pv)) throw notFound(base(org, pv))
    const v = await db
      .selectFrom('policy_versions')
      .select('snapshot')
      .where('org_id', '=', org)
      .where('version', '=', Number(pv))
      .executeTakeFirst()
    if (!v) throw notFound(base(org, pv))
    const snap = JSON.parse(v.snapshot) as Record<string, { id: string; doc: Doc }[]>
    return snap[type] ?? []
  }

  async function draftRow(
    tx: Transaction<Database>,
    org: number,
    type: PolicyType,
    id: string,
  ): Promise<Row> {
    const r = await tx
      .selectFrom('policy_objects')
      .selectAll()
      .where('org_id', '=', org)
      .where('type', '=', type)
      .where('id', '=', id)
      .executeTakeFirst()
    if (!r || r.draft_deleted || r.draft === null) throw notFound(objHref(org, 'draft', type, id))
    return r
  }

  // ---- collections and single objects, in any policy version ----
  for (const type of OBJECT_TYPES) {
    api.get(`/orgs/:org/sec_policy/:pv/${type}`, async (req, reply) => {
      const org = orgOf(req)
      const pv = (req.params as { pv: string }).pv
      const q = req.query as Record<string, unknown>
      const rows = (await objectsIn(org, pv, type)).filter(
        ({ doc }) =>
          textMatches(doc.name as string, q.name, q) &&
          textMatches(doc.external_data_set as string, q.external_data_set, q) &&
          textMatches(doc.external_data_reference as string, q.external_data_reference, q),
      )
      return collection(
        req,
        reply,
        ctx.jobs,
        org,
        rows.map((r) => view(org, pv, type, r.id, r.doc, r.update)),
      )
    })

    api.get(`/orgs/:org/sec_policy/:pv/${type}/:id`, async (req, reply) => {
      const org = orgOf(req)
      const { pv, id } = req.params as { pv: string; id: string }
      const r = (await objectsIn(org, pv, type)).find((x) => x.id === id)
      if (!r) throw notFound(objHref(org, pv, type, id))
      return json(reply, 200, view(org, pv, type, r.id, r.doc, r.update))
    })

    api.post(`/orgs/:org/sec_policy/:pv/${type}`, async (req, reply) => {
      const org = orgOf(req)
      draftOnly(req)
      const body = bodyObject(req)
      const out = await db.transaction().execute(async (tx) => {
        const c = new Checker()
        const doc = checkPolicyObject(c, type, body, await refIndex(tx, org), false)
        c.done()
        const ids = await tx
          .selectFrom('policy_objects')
          .select('id')
          .where('org_id', '=', org)
          .where('type', '=', type)
          .execute()
        const id = String(ids.reduce((m, r) => Math.max(m, Number(r.id)), 0) + 1)
        const t = now()
        const stored: Doc = {
          description: '',
          ...doc,
          ...(type === 'rule_sets' && {
            enabled: doc.enabled ?? true,
            scopes: doc.scopes ?? [],
            rules: [],
            deny_rules: [],
          }),
          created_at: t,
          updated_at: t,
          created_by: userActor(req).user,
        }
        await tx
          .insertInto('policy_objects')
          .values({
            org_id: org,
            type,
            id,
            draft: JSON.stringify(stored),
            active: null,
            draft_deleted: 0,
            updated_at: t,
          })
          .execute()
        const v = view(org, 'draft', type, id, stored, 'create')
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
        const row = await draftRow(tx, org, type, id)
        const c = new Checker()
        checkPolicyObject(c, type, body, await refIndex(tx, org), true)
        c.done()
        const before = JSON.parse(row.draft ?? '{}') as Doc
        const after = edited(before, body, req)
        await setRow(tx, org, type, id, { draft: JSON.stringify(after) })
        await recordEvent(tx, org, {
          event_type: `${SINGULAR[type]}.update`,
          created_by: userActor(req),
          resource_changes: [
            resourceChange(
              SINGULAR[type],
              objHref(org, 'draft', type, id),
              'update',
              before,
              after,
            ),
          ],
        })
      })
      return reply.code(204).send()
    })

    api.delete(`/orgs/:org/sec_policy/:pv/${type}/:id`, async (req, reply) => {
      const org = orgOf(req)
      draftOnly(req)
      const id = (req.params as { id: string }).id
      await db.transaction().execute(async (tx) => {
        const row = await draftRow(tx, org, type, id)
        const href = objHref(org, 'draft', type, id)
        const users = (
          await tx
            .selectFrom('policy_objects')
            .select(['type', 'id', 'draft'])
            .where('org_id', '=', org)
            .where('draft_deleted', '=', 0)
            .execute()
        ).filter(
          (o) =>
            o.draft !== null &&
            !(o.type === type && o.id === id) &&
            referencesOf(JSON.parse(o.draft) as Doc)
              .map(draftHref)
              .includes(href),
        )
        if (users.length > 0)
          throw invalidOne(
            'object_in_use',
            `${href} is used by ${users.map((u) => objHref(org, 'draft', u.type as PolicyType, u.id)).join(', ')}; remove those uses first`,
          )
        // Never provisioned: gone at once. Provisioned: a pending delete until the next provision.
        if (row.active === null)
          await tx
            .deleteFrom('policy_objects')
            .where('org_id', '=', org)
            .where('type', '=', type)
            .where('id', '=', id)
            .execute()
        else await setRow(tx, org, type, id, { draft_deleted: 1 })
        await recordEvent(tx, org, {
          event_type: `${SINGULAR[type]}.delete`,
          created_by: userActor(req),
          resource_changes: [
            resourceChange(
              SINGULAR[type],
              href,
              'delete',
              JSON.parse(row.draft ?? '{}') as Doc,
              undefined,
            ),
          ],
        })
      })
      return reply.code(204).send()
    })
  }

  // ---- rules inside rule sets ----
  for (const kind of Object.keys(RULE_KINDS) as RuleKind[]) {
    const field = RULE_FIELDS[kind]
    const withRuleSet = async (
      req: FastifyRequest,
      f: (
        tx: Transaction<Database>,
        org: number,
        rsId: string,
        rs: Doc,
        rules: Doc[],
      ) => Promise<void>,
    ) => {
      const org = orgOf(req)
      draftOnly(req)
      const rsId = (req.params as { rs: string }).rs
      await db.transaction().execute(async (tx) => {
        const row = await draftRow(tx, org, 'rule_sets', rsId)
        const rs = JSON.parse(row.draft ?? '{}') as Doc
        await f(tx, org, rsId, rs, [...((rs[field] as Doc[]) ?? [])])
      })
    }
    const save = async (
      tx: Transaction<Database>,
      org: number,
      rsId: string,
      rs: Doc,
      rules: Doc[],
    ) => {
      await setRow(tx, org, 'rule_sets', rsId, {
        draft: JSON.stringify({ ...rs, [field]: rules, updated_at: now() }),
      })
    }

    api.get(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}`, async (req, reply) => {
      const org = orgOf(req)
      const { pv, rs } = req.params as { pv: string; rs: string }
      const r = (await objectsIn(org, pv, 'rule_sets')).find((x) => x.id === rs)
      if (!r) throw notFound(objHref(org, pv, 'rule_sets', rs))
      return collection(
        req,
        reply,
        ctx.jobs,
        org,
        (view(org, pv, 'rule_sets', r.id, r.doc)[field] as Doc[]) ?? [],
      )
    })

    api.post(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}`, async (req, reply) => {
      const body = bodyObject(req)
      let created: Doc = {}
      await withRuleSet(req, async (tx, org, rsId, rs, rules) => {
        const c = new Checker()
        const rule = checkRule(c, body, '$', await refIndex(tx, org), kind === 'deny_rules')
        c.done()
        const id = rules.reduce((m, r) => Math.max(m, Number(r.id)), 0) + 1
        rules.push({ id, ...rule })
        await save(tx, org, rsId, rs, rules)
        created = {
          href: ruleHref(objHref(org, 'draft', 'rule_sets', rsId), kind, id),
          ...rule,
          update_type: 'create',
        }
        await recordEvent(tx, org, {
          event_type: `${RULE_KINDS[kind]}.create`,
          created_by: userActor(req),
          resource_changes: [
            resourceChange(RULE_KINDS[kind], String(created.href), 'create', undefined, rule),
          ],
        })
      })
      return json(reply, 201, created)
    })

    api.put(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}/:rule`, async (req, reply) => {
      const body = bodyObject(req)
      await withRuleSet(req, async (tx, org, rsId, rs, rules) => {
        const ruleId = Number((req.params as { rule: string }).rule)
        const i = rules.findIndex((r) => r.id === ruleId)
        const href = ruleHref(objHref(org, 'draft', 'rule_sets', rsId), kind, ruleId)
        const before = rules[i]
        if (!before) throw notFound(href)
        const c = new Checker()
        // What the body leaves out keeps its value; the id is ours, not the client's to send.
        const { id: _id, ...kept } = before
        const after = checkRule(
          c,
          { ...kept, ...body },
          '$',
          await refIndex(tx, org),
          kind === 'deny_rules',
        )
        c.done()
        rules[i] = { id: ruleId, ...after }
        await save(tx, org, rsId, rs, rules)
        await recordEvent(tx, org, {
          event_type: `${RULE_KINDS[kind]}.update`,
          created_by: userActor(req),
          resource_changes: [resourceChange(RULE_KINDS[kind], href, 'update', before, rules[i])],
        })
      })
      return reply.code(204).send()
    })

    api.delete(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}/:rule`, async (req, reply) => {
      await withRuleSet(req, async (tx, org, rsId, rs, rules) => {
        const ruleId = Number((req.params as { rule: string }).rule)
        const href = ruleHref(objHref(org, 'draft', 'rule_sets', rsId), kind, ruleId)
        const before = rules.find((r) => r.id === ruleId)
        if (!before) throw notFound(href)
        await save(
          tx,
          org,
          rsId,
          rs,
          rules.filter((r) => r.id !== ruleId),
        )
        await recordEvent(tx, org, {
          event_type: `${RULE_KINDS[kind]}.delete`,
          created_by: userActor(req),
          resource_changes: [resourceChange(RULE_KINDS[kind], href, 'delete', before, undefined)],
        })
      })
      return reply.code(204).send()
    })
  }

  // ---- firewall settings: a singleton, updated in draft ----
  api.get('/orgs/:org/sec_policy/:pv/firewall_settings', async (req, reply) => {
    const org = orgOf(req)
    const pv = (req.params as { pv: string }).pv
    const r = (await objectsIn(org, pv, 'firewall_settings'))[0]
    if (!r) throw notFound(objHref(org, pv, 'firewall_settings', ''))
    return json(reply, 200, view(org, pv, 'firewall_settings', r.id, r.doc, r.update))
  })

  api.put('/orgs/:org/sec_policy/:pv/firewall_settings', async (req, reply) => {
    const org = orgOf(req)
    draftOnly(req)
    const body = bodyObject(req)
    await db.transaction().execute(async (tx) => {
      const row = await draftRow(tx, org, 'firewall_settings', 'firewall_settings')
      const c = new Checker()
      checkFirewallSettings(c, body, await refIndex(tx, org))
      c.done()
      const before = JSON.parse(row.draft ?? '{}') as Doc
      const { href: _href, ...fields } = body
      const after = edited(before, fields, req)
      await setRow(tx, org, 'firewall_settings', 'firewall_settings', {
        draft: JSON.stringify(after),
      })
      await recordEvent(tx, org, {
        event_type: 'firewall_settings.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'firewall_settings',
            objHref(org, 'draft', 'firewall_settings', ''),
            'update',
            before,
            after,
          ),
        ],
      })
    })
    return reply.code(204).send()
  })

  // ---- pending changes and provisioning ----
  api.get('/orgs/:org/sec_policy/pending', async (req, reply) => {
    const org = orgOf(req)
    const rows = await db
      .selectFrom('policy_objects')
      .selectAll()
      .where('org_id', '=', org)
      .execute()
    const pending = rows.filter((r) => updateType(r) !== null)
    const out: Record<string, Doc[]> = {}
    for (const r of pending)
      (out[r.type] ??= []).push({
        href: objHref(org, 'draft', r.type as PolicyType, r.id),
        update_type: updateType(r),
        draft: r.draft_deleted ? null : (JSON.parse(r.draft ?? 'null') as unknown),
        active: JSON.parse(r.active ?? 'null') as unknown,
      })
    return json(reply, 200, out)
  })

  api.get('/orgs/:org/sec_policy', async (req, reply) => {
    const org = orgOf(req)
    const rows = await db
      .selectFrom('policy_versions')
      .select(VERSION_COLUMNS)
      .where('org_id', '=', org)
      .orderBy('version', 'desc')
      .execute()
    return collection(req, reply, ctx.jobs, org, rows.map(versionView))
  })

  api.get('/orgs/:org/sec_policy/:v', async (req, reply) => {
    const org = orgOf(req)
    const v = (req.params as { v: string }).v
    if (!/^\d+$/.test(v)) throw notFound(base(org, v))
    const row = await db
      .selectFrom('policy_versions')
      .select(VERSION_COLUMNS)
      .where('org_id', '=', org)
      .where('version', '=', Number(v))
      .executeTakeFirst()
    if (!row) throw notFound(base(org, v))
    return json(reply, 200, versionView(row))
  })

  api.post('/orgs/:org/sec_policy', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
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
        c.fail(
          `$.change_subset.${type}`,
          `not a provisionable type; use ${POLICY_TYPES.join(', ')}`,
        )
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
    const version = await db.transaction().execute(async (tx) => {
      const rows = await tx
        .selectFrom('policy_objects')
        .selectAll()
        .where('org_id', '=', org)
        .execute()
      const hrefOfRow = (r: Row) => objHref(org, 'draft', r.type as PolicyType, r.id)
      const pending = rows.filter((r) => updateType(r) !== null)
      const chosen = wanted.size === 0 ? pending : pending.filter((r) => wanted.has(hrefOfRow(r)))
      const unknown = [...wanted].filter((h) => !pending.some((r) => hrefOfRow(r) === h))
      if (unknown.length > 0)
        throw invalidOne('not_pending', `no pending change for ${unknown.join(', ')}`)
      if (chosen.length === 0)
        throw invalidOne('nothing_to_provision', 'there are no pending changes to provision')
      const chosenSet = new Set(chosen)
      // What active becomes: provisioned rows take their draft, the rest keep their active copy.
      const activeAfter = rows.flatMap((r) => {
        const doc = chosenSet.has(r) ? (r.draft_deleted ? null : r.draft) : r.active
        return doc === null
          ? []
          : [{ type: r.type as PolicyType, id: r.id, doc: JSON.parse(doc) as Doc }]
      })
      const activeHrefs = new Set(activeAfter.map((o) => objHref(org, 'draft', o.type, o.id)))
      const missing = activeAfter.flatMap((o) =>
        referencesOf(o.doc)
          .map(draftHref)
          .filter((h) => isDraftObjectHref(h) && !activeHrefs.has(h))
          .map((h) => `${objHref(org, 'draft', o.type, o.id)} needs ${h}`),
      )
      if (missing.length > 0)
        throw invalid(
          missing.slice(0, 20).map((m) => ({
            token: 'provision_dependency',
            message: `${m}, which would not be active; provision them together`,
          })),
        )
      for (const r of chosen) {
        if (r.draft_deleted)
          await tx
            .deleteFrom('policy_objects')
            .where('org_id', '=', org)
            .where('type', '=', r.type)
            .where('id', '=', r.id)
            .execute()
        else await setRow(tx, org, r.type, r.id, { active: r.draft })
      }
      const last = await tx
        .selectFrom('policy_versions')
        .select('version')
        .where('org_id', '=', org)
        .orderBy('version', 'desc')
        .limit(1)
        .executeTakeFirst()
      const v = (last?.version ?? 0) + 1
      const snapshot: Record<string, { id: string; doc: Doc }[]> = {}
      for (const o of activeAfter) (snapshot[o.type] ??= []).push({ id: o.id, doc: o.doc })
      const counts: Record<string, number> = {}
      for (const r of chosen) counts[r.type] = (counts[r.type] ?? 0) + 1
      const t = now()
      await tx
        .insertInto('policy_versions')
        .values({
          org_id: org,
          version: v,
          commit_message: message,
          created_at: t,
          created_by: JSON.stringify(userActor(req).user),
          snapshot: JSON.stringify(snapshot),
          object_counts: JSON.stringify(counts),
          workloads_affected: 0,
        })
        .execute()
      await recordEvent(tx, org, {
        event_type: 'sec_policy.create',
        created_by: userActor(req),
        resource_changes: chosen.map((r) =>
          resourceChange(
            SINGULAR[r.type as PolicyType],
            hrefOfRow(r),
            updateType(r) ?? 'update',
            JSON.parse(r.active ?? 'null') as Doc | undefined,
            r.draft_deleted ? undefined : (JSON.parse(r.draft ?? 'null') as Doc),
          ),
        ),
        notifications: [
          { notification_type: 'sec_policy.create', info: { version: v, commit_message: message } },
        ],
      })
      return v
    })
    const affected = await ctx.hostPolicies.recompute(org)
    await db
      .updateTable('policy_versions')
      .set({ workloads_affected: affected })
      .where('org_id', '=', org)
      .where('version', '=', version)
      .execute()
    const row = await db
      .selectFrom('policy_versions')
      .select(VERSION_COLUMNS)
      .where('org_id', '=', org)
      .where('version', '=', version)
      .executeTakeFirstOrThrow()
    return json(reply, 201, versionView(row))
  })
}

function draftOnly(req: FastifyRequest): void {
  const pv = (req.params as { pv?: string }).pv
  if (pv !== undefined && pv !== 'draft')
    throw invalidOne(
      'policy_version_read_only',
      `only the draft policy can change, not ${pv}; write to /sec_policy/draft/...`,
    )
}

function versionView(
  r: Pick<
    Database['policy_versions'],
    | 'org_id'
    | 'version'
    | 'commit_message'
    | 'created_at'
    | 'created_by'
    | 'object_counts'
    | 'workloads_affected'
  >,
) {
  return {
    href: base(r.org_id, r.version),
    version: r.version,
    commit_message: r.commit_message,
    created_at: r.created_at,
    created_by: JSON.parse(r.created_by) as unknown,
    object_counts: JSON.parse(r.object_counts) as unknown,
    workloads_affected: r.workloads_affected,
  }
}
