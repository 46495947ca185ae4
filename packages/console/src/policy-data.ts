import type { Label } from './api.js'
import { call, labelText, O, rememberNames } from './api.js'
import type { PolicyDocs, WorkloadDoc } from './policy-snapshot.js'

/** Reads one policy version's objects from the API, and remembers their names for messages. */
export async function loadPolicy(pv: 'draft' | 'active'): Promise<PolicyDocs> {
  const get = (type: string) =>
    call<Record<string, unknown>[]>('GET', `${O}/sec_policy/${pv}/${type}?max_results=10000`)
  const [
    ruleSets,
    services,
    ipLists,
    labelGroups,
    boundaries,
    virtualServices,
    firewallSettings,
    serviceBindings,
  ] = await Promise.all([
    get('rule_sets'),
    get('services'),
    get('ip_lists'),
    get('label_groups'),
    get('enforcement_boundaries'),
    get('virtual_services'),
    // Never provisioned: the active version has no firewall settings yet.
    call<Record<string, unknown>>('GET', `${O}/sec_policy/${pv}/firewall_settings`).catch(
      () => undefined,
    ),
    // Not provisioned: the same for either version.
    call<Record<string, unknown>[]>('GET', `${O}/service_bindings?max_results=100000`),
  ])
  const named = (items: Record<string, unknown>[]) =>
    rememberNames(items as { href: string; name: string }[], (x) => x.name)
  named(ruleSets)
  for (const rs of ruleSets)
    for (const [kind, word] of [
      ['rules', 'allow'],
      ['deny_rules', 'deny'],
    ] as const)
      rememberNames(
        ((rs[kind] as { href: string }[] | undefined) ?? []).map((r, i) => ({
          href: r.href,
          name: `${String(rs.name)}, ${word} rule ${i + 1}`,
        })),
        (r) => r.name,
      )
  named(services)
  named(ipLists)
  named(labelGroups)
  named(virtualServices)
  return {
    ruleSets,
    services,
    ipLists,
    labelGroups,
    boundaries,
    virtualServices,
    firewallSettings,
    serviceBindings,
  }
}

export async function loadLabels(): Promise<Label[]> {
  const labels = await call<Label[]>('GET', `${O}/labels?max_results=10000`)
  rememberNames(labels, labelText)
  return labels
}

export async function loadWorkloads<W extends WorkloadDoc = WorkloadDoc>(): Promise<W[]> {
  const ws = await call<W[]>('GET', `${O}/workloads?max_results=100000`)
  rememberNames(ws, (w) => w.name)
  return ws
}
