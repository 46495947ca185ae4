import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Transaction } from 'kysely'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import type { Database } from '../db/schema.js'
import { notFound } from '../errors.js'
import { draftHref, draftObjectHref, policyObjectHref, ruleHref } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { ruleMatches } from '../query/policy-object-filters.js'
import { filtersOf } from '../query/query-filters.js'
import { draftObject, draftOnly, refIndex } from '../policy/draft-edits.js'
import { checkRule } from '../policy/rule-checks.js'
import type { RuleKind } from '../policy/types.js'
import { RULE_FIELDS, RULE_KINDS } from '../policy/types.js'
import { objectsInVersion } from '../policy/version-objects.js'
import { recordEvent } from '../stores/events.js'
import { findObject, saveDraft } from '../stores/policy-objects.js'
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'

/** An edit of one rule set's rules of one kind, inside its transaction. */
type RuleEdit = (ctx: {
  tx: Transaction<Database>
  org: number
  /** The rule set's draft href. */
  href: string
  rules: Doc[]
  /** Stores the rule set with these rules. */
  save: (rules: Doc[]) => Promise<void>
}) => Promise<void>

/** The rules of rule sets, allow and deny, in any version; edited in the draft one by one. */
export function registerPolicyRules(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  for (const kind of Object.keys(RULE_KINDS) as RuleKind[]) {
    const field = RULE_FIELDS[kind]
    const ruleKind = kind === 'deny_rules' ? 'deny_rule' : 'sec_rule'
    const ruleSetEdit = async (req: FastifyRequest, edit: RuleEdit) => {
      const org = orgOf(req)
      draftOnly(req)
      const rsId = (req.params as { rs: string }).rs
      await db.transaction().execute(async (tx) => {
        const row = await draftObject(tx, org, 'rule_sets', rsId)
        const rs = row.draft
        await edit({
          tx,
          org,
          href: draftObjectHref(org, 'rule_sets', rsId),
          rules: [...((rs[field] as Doc[]) ?? [])],
          save: (rules) => saveDraft(tx, row, { ...rs, [field]: rules, updated_at: now() }),
        })
      })
    }
    /** The rules of a rule set's active copy by id (none when it was never provisioned). */
    const activeRules = async (org: number, rs: string) => {
      const row = await findObject(db, org, 'rule_sets', rs)
      return new Map(((row?.active?.[field] as Doc[] | undefined) ?? []).map((x) => [x.id, x]))
    }
    /**
     * A rule as the API shows it: its href, and in the draft its pending change against the
     * active copy. A rule keeps no times of its own: it shows its rule set's.
     */
    const ruleView = (
      ruleSetHref: string,
      { id, ...rule }: Doc,
      ruleSet: Doc,
      active: ReadonlyMap<unknown, Doc> | undefined,
    ): Doc => {
      const before = active?.get(id)
      return {
        href: ruleHref(ruleSetHref, kind, id),
        ...rule,
        created_at: ruleSet.created_at ?? null,
        updated_at: ruleSet.updated_at ?? null,
        created_by: ruleSet.created_by ?? null,
        updated_by: ruleSet.updated_by ?? ruleSet.created_by ?? null,
        ...(active && {
          update_type: !before
            ? 'create'
            : JSON.stringify(before) === JSON.stringify({ id, ...rule })
              ? null
              : 'update',
        }),
      }
    }
    const ruleOf = (req: FastifyRequest, rules: Doc[]) => {
      const id = Number((req.params as { rule: string }).rule)
      return { id, index: rules.findIndex((r) => r.id === id) }
    }

    api.get(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}`, async (req, reply) => {
      const org = orgOf(req)
      const { pv, rs } = req.params as { pv: string; rs: string }
      const href = policyObjectHref(org, pv, 'rule_sets', rs)
      const r = (await objectsInVersion(db, org, pv, 'rule_sets')).find((x) => x.id === rs)
      if (!r) throw notFound(href)
      const f = filtersOf(req)
      const active = pv === 'draft' ? await activeRules(org, rs) : undefined
      return collection(
        req,
        reply,
        ctx.jobs,
        org,
        ((r.doc[field] as Doc[]) ?? []).filter((rule) => ruleMatches(f, rule)),
        (page) => page.map((rule) => ruleView(href, rule, r.doc, active)),
      )
    })

    /** One rule, as its rule set in that version holds it (clients read a rule back by href). */
    api.get(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}/:rule`, async (req, reply) => {
      const org = orgOf(req)
      const { pv, rs, rule } = req.params as { pv: string; rs: string; rule: string }
      const href = policyObjectHref(org, pv, 'rule_sets', rs)
      const r = (await objectsInVersion(db, org, pv, 'rule_sets')).find((x) => x.id === rs)
      const found = ((r?.doc[field] as Doc[] | undefined) ?? []).find((x) => String(x.id) === rule)
      if (!r || !found) throw notFound(ruleHref(href, kind, rule))
      const active = pv === 'draft' ? await activeRules(org, rs) : undefined
      return json(reply, 200, ruleView(href, found, r.doc, active))
    })

    api.post(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}`, async (req, reply) => {
      const body = bodyObject(req)
      let created: Doc = {}
      await ruleSetEdit(req, async ({ tx, org, href, rules, save }) => {
        const c = new Checker()
        if (body.href !== undefined) c.fail('$.href', 'is assigned by the server; leave it out')
        const rule = checkRule(c, body, '$', await refIndex(tx, org), ruleKind)
        c.done()
        const id = rules.reduce((m, r) => Math.max(m, Number(r.id)), 0) + 1
        await save([...rules, { id, ...rule }])
        created = { href: ruleHref(href, kind, id), ...rule, update_type: 'create' }
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
      await ruleSetEdit(req, async ({ tx, org, href, rules, save }) => {
        const { id, index } = ruleOf(req, rules)
        const before = rules[index]
        if (!before) throw notFound(ruleHref(href, kind, id))
        const c = new Checker()
        // clients send back the href they read, in whichever version they read it
        const { href: echoed, ...fields } = body
        const mine = ruleHref(href, kind, id)
        if (echoed !== undefined && (typeof echoed !== 'string' || draftHref(echoed) !== mine))
          c.fail('$.href', `must name this rule, ${mine}, or be left out`)
        // What the body leaves out keeps its value; the id is ours, not the client's to send.
        const { id: _id, ...kept } = before
        const checked = checkRule(c, { ...kept, ...fields }, '$', await refIndex(tx, org), ruleKind)
        c.done()
        const after = { id, ...checked }
        await save(rules.map((r, i) => (i === index ? after : r)))
        await recordEvent(tx, org, {
          event_type: `${RULE_KINDS[kind]}.update`,
          created_by: userActor(req),
          resource_changes: [
            resourceChange(RULE_KINDS[kind], ruleHref(href, kind, id), 'update', before, after),
          ],
        })
      })
      return reply.code(204).send()
    })

    api.delete(`/orgs/:org/sec_policy/:pv/rule_sets/:rs/${kind}/:rule`, async (req, reply) => {
      await ruleSetEdit(req, async ({ tx, org, href, rules, save }) => {
        const { id, index } = ruleOf(req, rules)
        const before = rules[index]
        if (!before) throw notFound(ruleHref(href, kind, id))
        await save(rules.filter((r) => r.id !== id))
        await recordEvent(tx, org, {
          event_type: `${RULE_KINDS[kind]}.delete`,
          created_by: userActor(req),
          resource_changes: [
            resourceChange(RULE_KINDS[kind], ruleHref(href, kind, id), 'delete', before),
          ],
        })
      })
      return reply.code(204).send()
    })
  }
}
