import type { AddressSet, LabelGroup } from '@palisade/model'
import { addressSetOf, expandLabelGroup } from '@palisade/model'
import { draftHref, draftObjectHref, policyObjectHref, ruleHref, workloadHref } from '../hrefs.js'
import type { Db } from '../stores/db.js'
import { labelsByHref } from '../stores/labels.js'
import { policyObjects } from '../stores/policy-objects.js'
import { listWorkloads } from '../stores/workloads.js'
import type { ActorContext, FlowWorkload } from './flow-match.js'

/** An IP list's ranges, as its document holds them. */
type IpRanges = { from_ip: string; to_ip?: string; exclusion?: boolean }[] | undefined

/**
 * What a query's actors resolve to: workloads by address (with labels), IP lists, label groups
 * (expanded), and which deny rules override.
 */
export async function actorContext(db: Db, org: number): Promise<ActorContext> {
  const labels = await labelsByHref(db, org)
  const workloadByIp = new Map<string, FlowWorkload>()
  for (const w of await listWorkloads(db, org, 'any')) {
    const info: FlowWorkload = {
      href: workloadHref(org, w.id),
      name: w.name,
      hostname: w.hostname,
      managed: w.managed === 1,
      os_type: w.os_platform,
      labels: w.labels.map((href) => ({
        href,
        key: labels.get(href)?.key ?? '',
        value: labels.get(href)?.value ?? '',
      })),
    }
    for (const i of w.interfaces) workloadByIp.set(i.address, info)
  }
  const objects = await policyObjects(db, org)
  const ipLists = new Map<string, AddressSet>()
  for (const l of objects.filter((o) => o.type === 'ip_lists')) {
    for (const [side, doc] of [
      ['draft', l.draft],
      ['active', l.active],
    ] as const) {
      if (!doc) continue
      ipLists.set(
        policyObjectHref(org, side, 'ip_lists', l.id),
        addressSetOf(
          ((doc.ip_ranges as IpRanges) ?? []).map((r) => ({
            from: r.from_ip,
            ...(r.to_ip && { to: r.to_ip }),
            ...(r.exclusion && { exclusion: true }),
          })),
        ),
      )
    }
  }
  const groups = new Map<string, LabelGroup>()
  const overrideDenyRules = new Set<string>()
  for (const o of objects) {
    const doc = o.draft ?? o.active
    if (o.type === 'label_groups' && doc) {
      const href = draftObjectHref(org, 'label_groups', o.id)
      const refs = (x: unknown) =>
        (Array.isArray(x) ? x : []).flatMap((r: { href?: unknown }) =>
          typeof r.href === 'string' ? [draftHref(r.href)] : [],
        )
      groups.set(href, {
        href,
        key: typeof doc.key === 'string' ? doc.key : '',
        name: typeof doc.name === 'string' ? doc.name : '',
        labels: refs(doc.labels),
        subGroups: refs(doc.sub_groups),
      })
    }
    // A flow names the rule as the policy its agent enforced had it: draft or active, by id.
    if (o.type === 'rule_sets')
      for (const copy of [o.draft, o.active])
        for (const r of (copy?.deny_rules as { id: unknown; override?: unknown }[] | undefined) ??
          [])
          if (r.override === true)
            overrideDenyRules.add(
              ruleHref(draftObjectHref(org, 'rule_sets', o.id), 'deny_rules', r.id),
            )
  }
  const labelGroups = new Map([...groups.keys()].map((h) => [h, expandLabelGroup(h, groups)]))
  return { workloadByIp, ipLists, labelGroups, overrideDenyRules }
}
