import type { HostPolicy } from '@palisade/model'
import { hostPolicyComputer } from '@palisade/model'
import type { Label } from './api.js'
import type { PolicyDocs, WorkloadDoc } from './policy-snapshot.js'
import { draftHref, snapshotOf } from './policy-snapshot.js'

/**
 * What a provision would change on each host, before it is done: the active policy, and the
 * active policy with the chosen pending changes applied, computed for every workload with an
 * agent with the model the server uses. Pure.
 */

type Doc = Record<string, unknown>

const hrefOf = (d: Doc) => draftHref(String(d.href))
/** The draft listing keeps objects pending deletion (marked `delete`); the draft has none. */
const live = (d: Doc) => d.update_type !== 'delete'

/** The active policy after provisioning the chosen draft hrefs (all pending, when none chosen). */
export function policyAfter(
  active: PolicyDocs,
  draft: PolicyDocs,
  chosen: ReadonlySet<string>,
): PolicyDocs {
  const pick = (a: readonly Doc[], d: readonly Doc[]) => {
    const out = new Map(a.map((x) => [hrefOf(x), x]))
    for (const x of d) if (chosen.has(hrefOf(x))) out.set(hrefOf(x), x)
    for (const x of d) if (chosen.has(hrefOf(x)) && !live(x)) out.delete(hrefOf(x))
    return [...out.values()]
  }
  const fsHref = (fs: Doc | undefined) => (fs ? hrefOf(fs) : '')
  const settingsChosen = draft.firewallSettings && chosen.has(fsHref(draft.firewallSettings))
  return {
    ruleSets: pick(active.ruleSets, draft.ruleSets),
    services: pick(active.services, draft.services),
    ipLists: pick(active.ipLists, draft.ipLists),
    labelGroups: pick(active.labelGroups, draft.labelGroups),
    boundaries: pick(active.boundaries, draft.boundaries),
    virtualServices: pick(active.virtualServices, draft.virtualServices),
    serviceBindings: draft.serviceBindings,
    firewallSettings: settingsChosen ? draft.firewallSettings : active.firewallSettings,
  }
}

export interface HostChange {
  readonly href: string
  readonly name: string
  readonly modeBefore: string
  readonly modeAfter: string
  readonly rulesAdded: number
  readonly rulesRemoved: number
}

/** What a host is sent, without the version number: the server's test of a changed host. */
const essence = (p: HostPolicy) => JSON.stringify({ ...p, version: undefined })
const ruleKeys = (p: HostPolicy) => new Set(p.rules.map((r) => JSON.stringify(r)))

/** The workloads with an agent whose host policy differs between `before` and `after`. */
export function hostChanges(
  before: PolicyDocs,
  after: PolicyDocs,
  labels: readonly Label[],
  workloads: readonly (WorkloadDoc & { agent?: unknown })[],
): HostChange[] {
  const a = hostPolicyComputer(snapshotOf(before, labels, workloads))
  const b = hostPolicyComputer(snapshotOf(after, labels, workloads))
  return workloads
    .filter((w) => w.agent)
    .flatMap((w) => {
      const [x, y] = [a(w.href), b(w.href)]
      if (essence(x) === essence(y)) return []
      const [kx, ky] = [ruleKeys(x), ruleKeys(y)]
      return [
        {
          href: w.href,
          name: w.name,
          modeBefore: x.mode.mode,
          modeAfter: y.mode.mode,
          rulesAdded: [...ky].filter((k) => !kx.has(k)).length,
          rulesRemoved: [...kx].filter((k) => !ky.has(k)).length,
        },
      ]
    })
}
