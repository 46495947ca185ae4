import type { AddressSet } from '@palisade/model'
import { addressSetOf } from '@palisade/model'
import { policyObjectHref, workloadHref } from '../hrefs.js'
import type { Db } from '../stores/db.js'
import { labelsByHref } from '../stores/labels.js'
import { policyObjects } from '../stores/policy-objects.js'
import { listWorkloads } from '../stores/workloads.js'
import type { ActorContext, FlowWorkload } from './flow-match.js'

/** An IP list's ranges, as its document holds them. */
type IpRanges = { from_ip: string; to_ip?: string; exclusion?: boolean }[] | undefined

/** What a query's actors resolve to: workloads by address (with labels) and IP lists. */
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
  const ipLists = new Map<string, AddressSet>()
  for (const l of await policyObjects(db, org, 'ip_lists')) {
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
  return { workloadByIp, ipLists }
}
