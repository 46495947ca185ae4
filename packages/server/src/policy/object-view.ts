import { policyObjectHref, policyVersionHref, ruleHref } from '../hrefs.js'
import type { PendingChange } from '../provisioning/provision-plan.js'
import type { VersionRow } from '../stores/versions.js'
import type { Doc } from '../validate.js'
import type { PolicyType, RuleKind } from './types.js'
import { RULE_FIELDS } from './types.js'

/** A rule set's document with each rule named by its href (under the rule set's) for its id. */
export function withRuleHrefs(ruleSetHref: string, doc: Doc): Doc {
  const out: Doc = { ...doc }
  for (const kind of Object.keys(RULE_FIELDS) as RuleKind[]) {
    const field = RULE_FIELDS[kind]
    out[field] = ((doc[field] as Doc[]) ?? []).map(({ id, ...r }) => ({
      href: ruleHref(ruleSetHref, kind, id),
      ...r,
    }))
  }
  return out
}

/** An object as the API shows it in one policy version; in the draft, with its pending change. */
export function objectView(
  org: number,
  pv: string,
  type: PolicyType,
  id: string,
  doc: Doc,
  update?: PendingChange | null,
): Doc {
  const href = policyObjectHref(org, pv, type, id)
  const out: Doc = { href, ...(type === 'rule_sets' ? withRuleHrefs(href, doc) : doc) }
  if (pv === 'draft') out.update_type = update ?? null
  return out
}

export function versionView(r: VersionRow) {
  return {
    href: policyVersionHref(r.org_id, r.version),
    version: r.version,
    commit_message: r.commit_message,
    created_at: r.created_at,
    created_by: r.created_by,
    object_counts: r.object_counts,
    workloads_affected: r.workloads_affected,
  }
}
