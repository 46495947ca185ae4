/**
 * The rules a rule set's body carries (`rules`, `deny_rules`): a create makes them, an update
 * replaces the list. A rule that names an existing one by href keeps its id; the others are new.
 */
import { draftHref, ruleHref } from '../hrefs.js'
import type { Checker, Doc } from '../validate.js'
import type { InlineRule } from './policy-checks.js'
import type { RuleKind } from './types.js'
import { RULE_FIELDS } from './types.js'

const KIND_OF_FIELD: Record<string, RuleKind> = { rules: 'sec_rules', deny_rules: 'deny_rules' }

/** The stored rule lists (with ids) for the lists the body gave; the rule set's `before`. */
export function inlineRules(
  c: Checker,
  ruleSetHref: string,
  before: Doc,
  inline: Partial<Record<'rules' | 'deny_rules', InlineRule[]>>,
): Partial<Record<'rules' | 'deny_rules', Doc[]>> {
  const out: Partial<Record<'rules' | 'deny_rules', Doc[]>> = {}
  for (const [field, list] of Object.entries(inline) as ['rules' | 'deny_rules', InlineRule[]][]) {
    const kind = KIND_OF_FIELD[field] ?? 'sec_rules'
    const existing = ((before[RULE_FIELDS[kind]] as Doc[] | undefined) ?? []).map((r) =>
      Number(r.id),
    )
    let next = existing.reduce((m, x) => Math.max(m, x), 0)
    const taken = new Set<number>()
    out[field] = list.map(({ href, rule }, i) => {
      if (href === undefined) return { id: ++next, ...rule }
      const id = existing.find((x) => ruleHref(ruleSetHref, kind, x) === draftHref(href))
      const path = `$.${field}[${i}].href`
      if (id === undefined)
        c.fail(path, `${href} is not a rule of ${ruleSetHref}; leave href out to add a rule`)
      else if (taken.has(id)) c.fail(path, `${href} is named twice; name each rule once`)
      if (id === undefined || taken.has(id)) return { id: ++next, ...rule }
      taken.add(id)
      return { id, ...rule }
    })
  }
  return out
}
