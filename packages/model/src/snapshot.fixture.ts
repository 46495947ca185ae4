import { DEFAULT_FIREWALL_SETTINGS } from './firewall-settings.js'
import type { PolicySnapshot } from './host-policy.js'
import type { Label } from './labels.js'
import type { Actor, DenyRule, Rule, RuleSet, ServiceRef } from './rules.js'
import type { Workload } from './workload.js'

/** Small builders for test policies; hrefs follow the API's shapes. */
export const label = (id: number, key: string, value: string): Label => ({
  href: `/orgs/1/labels/${id}`,
  key,
  value,
})

export const workload = (
  name: string,
  address: string | string[],
  labels: Label[],
  over: Partial<Workload> = {},
): Workload => ({
  href: `/orgs/1/workloads/${name}`,
  name,
  agentType: 'server',
  osPlatform: 'linux',
  enforcementMode: 'full',
  labels: labels.map((l) => l.href),
  interfaces: (Array.isArray(address) ? address : [address]).map((a, i) => ({
    name: `eth${i}`,
    address: a,
  })),
  ...over,
})

let ruleSeq = 0
export const allow = (
  providers: Actor[],
  consumers: Actor[],
  services: ServiceRef[],
  over: Partial<Rule> = {},
): Rule => ({
  href: `/orgs/1/sec_policy/draft/rule_sets/1/sec_rules/${++ruleSeq}`,
  enabled: true,
  providers,
  consumers,
  services,
  unscopedConsumers: false,
  ...over,
})

export const deny = (
  providers: Actor[],
  consumers: Actor[],
  services: ServiceRef[],
  override = false,
): DenyRule => ({
  ...allow(providers, consumers, services),
  href: `/orgs/1/sec_policy/draft/rule_sets/1/deny_rules/${++ruleSeq}`,
  override,
})

export const ruleSet = (
  rules: Rule[],
  denyRules: DenyRule[] = [],
  scopes: RuleSet['scopes'] = [],
): RuleSet => ({
  href: '/orgs/1/sec_policy/draft/rule_sets/1',
  name: 'rs',
  enabled: true,
  scopes,
  rules,
  denyRules,
})

export const lbl = (l: Label): Actor => ({ kind: 'label', href: l.href })
export const AMS: Actor = { kind: 'ams' }

export const snapshot = (over: Partial<PolicySnapshot>): PolicySnapshot => ({
  version: 1,
  labels: [],
  labelGroups: [],
  workloads: [],
  services: [],
  ipLists: [],
  ruleSets: [],
  firewallSettings: DEFAULT_FIREWALL_SETTINGS,
  virtualServices: [],
  serviceBindings: [],
  ...over,
})
