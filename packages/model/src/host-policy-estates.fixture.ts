/**
 * Generated estates for the affected-hosts property: labels, label groups, IP lists, services,
 * virtual services and bindings, two rule sets of three rule slots, firewall settings and six
 * hosts; and changes to one part of an estate at a time (one rule, one rule set's scopes, one
 * group, list, service or virtual service, the bindings, the settings, the labels, one host).
 */
import fc from 'fast-check'
import type { FirewallSettings } from './firewall-settings.js'
import type { PolicySnapshot } from './host-policy.js'
import type { Label, LabelGroup } from './labels.js'
import type {
  Actor,
  IpList,
  Rule,
  RuleSet,
  ScopeRef,
  ServiceBinding,
  VirtualService,
} from './rules.js'
import { RESOLVE_AS, RULE_SIDES } from './rules.js'
import type { Service } from './service.js'
import { AMS, allow, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'

/** What an arbitrary generates. */
type Of<A> = A extends fc.Arbitrary<infer T> ? T : never

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const prod = label(3, 'env', 'prod')
const dev = label(4, 'env', 'dev')
const loc = label(5, 'loc', 'a')
const labels = [web, db, prod, dev, loc]
const G = (id: string) => `/orgs/1/sec_policy/draft/label_groups/${id}`
const exclusion = fc.constantFrom({}, { exclusion: true } as const)
const labelGroup = (id: string, key: string, pool: Label[], subGroups: string[] = []) =>
  fc
    .subarray(pool.map((l) => l.href))
    .map((ls): LabelGroup => ({ href: G(id), key, name: id, labels: ls, subGroups }))
const groupIds = ['roles', 'envs', 'top']
const groupArbs = [
  labelGroup('roles', 'role', [web, db]),
  labelGroup('envs', 'env', [prod, dev]),
  labelGroup('top', 'env', [dev], [G('envs')]),
]
const ipList = (i: number) =>
  fc
    .subarray(['198.18.1.0/30', '198.18.1.4/31', '10.0.0.0/8', '0.0.0.0/0'], { minLength: 1 })
    .map((r): IpList => ({
      href: `/orgs/1/ip_lists/${i}`,
      name: `l${i}`,
      ranges: r.map((from) => ({ from })),
    }))
const service = (i: number) =>
  fc.subarray([22, 80, 443, 5432], { minLength: 1 }).map((ps): Service => ({
    href: `/orgs/1/services/${i}`,
    name: `s${i}`,
    ports: ps.map((port) => ({ proto: 6, port })),
  }))
const V = (i: number) => `/orgs/1/sec_policy/draft/virtual_services/v${i}`
const virtualService = (i: number) =>
  fc
    .record({
      labels: fc.subarray(labels.map((l) => l.href)),
      service: fc.boolean(),
      ip: fc.boolean(),
    })
    .map((v): VirtualService => ({
      href: V(i),
      name: `v${i}`,
      labels: v.labels,
      ports: [{ proto: 6, port: 8080 }],
      ...(v.service && { service: '/orgs/1/services/1' }),
      ipOverrides: v.ip ? ['198.18.9.9'] : [],
      serviceAddresses: [],
    }))
const bindings = fc
  .subarray([
    [0, 1],
    [0, 2],
    [1, 3],
    [1, 1],
  ])
  .chain((bs) =>
    fc.tuple(
      ...bs.map(([v, h]) =>
        fc.boolean().map((over): ServiceBinding => ({
          href: `/orgs/1/service_bindings/b${v}${h}`,
          virtualService: V(v!),
          workload: `/orgs/1/workloads/h${h}`,
          portOverrides: over ? [{ port: 8080, newPort: 9090 }] : [],
        })),
      ),
    ),
  )
const actor: fc.Arbitrary<Actor> = fc.oneof(
  fc.tuple(fc.constantFrom(...labels), exclusion).map(([l, e]): Actor => ({ ...lbl(l), ...e })),
  fc.constant(AMS),
  fc
    .tuple(fc.constantFrom(...groupIds), exclusion)
    .map(([g, e]): Actor => ({ kind: 'label_group', href: G(g), ...e })),
  fc
    .integer({ min: 0, max: 5 })
    .map((i): Actor => ({ kind: 'workload', href: `/orgs/1/workloads/h${i}` })),
  fc.integer({ min: 0, max: 1 }).map((i): Actor => ({ kind: 'virtual_service', href: V(i) })),
  fc
    .integer({ min: 0, max: 1 })
    .map((i): Actor => ({ kind: 'ip_list', href: `/orgs/1/ip_lists/${i}` })),
)
const scopeRef = fc.oneof(
  fc
    .tuple(fc.constantFrom(...labels), exclusion)
    .map(([l, e]): ScopeRef => ({ label: l.href, ...e })),
  fc
    .tuple(fc.constantFrom(...groupIds), exclusion)
    .map(([g, e]): ScopeRef => ({ labelGroup: G(g), ...e })),
)
const scopes = fc.array(fc.array(scopeRef, { maxLength: 2 }), { maxLength: 2 })
const rule = (href: string) =>
  fc
    .record({
      providers: fc.array(actor, { minLength: 1, maxLength: 3 }),
      consumers: fc.array(actor, { minLength: 1, maxLength: 3 }),
      services: fc.subarray<Rule['services'][number]>([
        { href: '/orgs/1/services/0' },
        { href: '/orgs/1/services/1' },
        { proto: 6, port: 1 },
      ]),
      unscopedConsumers: fc.boolean(),
      enabled: fc.boolean(),
      deny: fc.boolean(),
      providersResolveAs: fc.subarray([...RESOLVE_AS], { minLength: 1 }),
      useWorkloadSubnets: fc.subarray([...RULE_SIDES]),
    })
    .map(({ deny, ...r }) => ({ ...allow(r.providers, r.consumers, r.services, r), href, deny }))
/** A rule set: its scopes and state, and three rule slots (null: no rule there). */
const ruleSetParts = (i: number) =>
  fc.record({
    enabled: fc.boolean(),
    scopes,
    rules: fc.tuple(...[0, 1, 2].map((j) => fc.option(rule(`/orgs/1/rule_sets/${i}/rules/${j}`)))),
  })
type RuleSetParts = Of<ReturnType<typeof ruleSetParts>>
const toRuleSet = (i: number, p: RuleSetParts): RuleSet => {
  const rules = p.rules.flatMap((r) => (r ? [r] : []))
  const strip = ({ deny: _, ...r }: (typeof rules)[number]): Rule => r
  return {
    ...ruleSet(
      rules.filter((r) => !r.deny).map(strip),
      rules.filter((r) => r.deny).map((r) => ({ ...strip(r), override: false })),
      p.scopes,
    ),
    href: `/orgs/1/rule_sets/${i}`,
    enabled: p.enabled,
  }
}
const settings = fc
  .record({
    coexistence: fc.array(
      fc.record({
        scope: fc.subarray(
          labels.map((l) => l.href),
          { maxLength: 2 },
        ),
        illumioPrimary: fc.boolean(),
      }),
      { maxLength: 2 },
    ),
    reject: fc.array(fc.array(scopeRef, { maxLength: 2 }), { maxLength: 1 }),
    loopback: fc.array(fc.array(scopeRef, { maxLength: 2 }), { maxLength: 1 }),
  })
  .map((s): FirewallSettings => ({
    firewallCoexistence: s.coexistence,
    blockedConnectionRejectScopes: s.reject,
    loopbackInterfacesInPolicyScopes: s.loopback,
  }))
/**
 * Host `i`: some of `labels`, one of the first `addresses` addresses of 198.18.1.0/24, its
 * interface on one of `cidrBlocks` (undefined: no subnet), in any enforcement mode.
 */
export const hostOf = (
  i: number,
  labels: readonly Label[],
  addresses: number,
  cidrBlocks: readonly (number | undefined)[],
) =>
  fc
    .record({
      labels: fc.subarray([...labels]),
      address: fc.integer({ min: 1, max: addresses }),
      cidrBlock: fc.constantFrom(...cidrBlocks),
      enforcementMode: fc.constantFrom('full', 'selective', 'idle' as const),
    })
    .map((h) =>
      workload(`h${i}`, `198.18.1.${h.address}`, h.labels, {
        enforcementMode: h.enforcementMode,
        interfaces: [
          {
            name: 'eth0',
            address: `198.18.1.${h.address}`,
            ...(h.cidrBlock !== undefined && { cidrBlock: h.cidrBlock }),
          },
        ],
      }),
    )
const host = (i: number) => fc.option(hostOf(i, labels, 5, [undefined, 30]), { freq: 5 })
// labels change rarely: `loc` moves to another type, or a new label appears
const labelSets = fc.constantFrom(
  labels,
  [web, db, prod, dev, { ...loc, key: 'env' }],
  [...labels, label(6, 'role', 'new')],
)
const hostIds = [0, 1, 2, 3, 4, 5]
export const estate = fc.record({
  labels: fc.constant(labels),
  groups: fc.tuple(...groupArbs),
  ipLists: fc.tuple(ipList(0), ipList(1)),
  services: fc.tuple(service(0), service(1)),
  virtualServices: fc.tuple(virtualService(0), virtualService(1)),
  bindings,
  ruleSets: fc.tuple(ruleSetParts(0), ruleSetParts(1)),
  settings,
  hosts: fc.tuple(...hostIds.map(host)),
})
export type Estate = Of<typeof estate>
/** One change: a part of the estate replaced (one rule, one group, one host: not all at once). */
export const change: fc.Arbitrary<(e: Estate) => Estate> = fc.oneof(
  fc.tuple(fc.nat(1), fc.nat(2)).chain(([i, j]) =>
    fc.option(rule(`/orgs/1/rule_sets/${i}/rules/${j}`)).map((r) => (e: Estate) => {
      const rs = e.ruleSets.map((p, n) =>
        n === i ? { ...p, rules: p.rules.map((x, m) => (m === j ? r : x)) as typeof p.rules } : p,
      ) as Estate['ruleSets']
      return { ...e, ruleSets: rs }
    }),
  ),
  fc.tuple(fc.nat(1), scopes, fc.boolean()).map(([i, sc, on]) => (e: Estate) => ({
    ...e,
    ruleSets: e.ruleSets.map((p, n) =>
      n === i ? { ...p, scopes: sc, enabled: on } : p,
    ) as Estate['ruleSets'],
  })),
  fc.nat(2).chain((i) =>
    groupArbs[i]!.map((g) => (e: Estate) => ({
      ...e,
      groups: e.groups.map((x, n) => (n === i ? g : x)) as Estate['groups'],
    })),
  ),
  fc.nat(1).chain((i) =>
    fc
      .tuple(ipList(i), service(i), virtualService(i), fc.nat(2))
      .map(([l, s, v, which]) => (e: Estate) => ({
        ...e,
        ...(which === 0 && {
          ipLists: e.ipLists.map((x, n) => (n === i ? l : x)) as Estate['ipLists'],
        }),
        ...(which === 1 && {
          services: e.services.map((x, n) => (n === i ? s : x)) as Estate['services'],
        }),
        ...(which === 2 && {
          virtualServices: e.virtualServices.map((x, n) =>
            n === i ? v : x,
          ) as Estate['virtualServices'],
        }),
      })),
  ),
  bindings.map((b) => (e: Estate) => ({ ...e, bindings: b })),
  settings.map((s) => (e: Estate) => ({ ...e, settings: s })),
  labelSets.map((ls) => (e: Estate) => ({ ...e, labels: ls })),
  fc.tuple(fc.nat(5), host(0)).map(([i, h]) => (e: Estate) => ({
    ...e,
    hosts: e.hosts.map((x, n) =>
      n !== i ? x : h && { ...h, href: `/orgs/1/workloads/h${i}`, name: `h${i}` },
    ) as Estate['hosts'],
  })),
)
export const snapshotOf = (e: Estate, version: number): PolicySnapshot =>
  snapshot({
    version,
    labels: e.labels,
    labelGroups: e.groups,
    ipLists: e.ipLists,
    services: e.services,
    virtualServices: e.virtualServices,
    serviceBindings: e.bindings,
    ruleSets: e.ruleSets.map((p, i) => toRuleSet(i, p)),
    firewallSettings: e.settings,
    workloads: e.hosts.flatMap((h) => (h ? [h] : [])),
  })
