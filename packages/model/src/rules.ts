import type { AddressEntry } from './ip.js'
import type { LabelRef } from './label-match.js'
import type { ServicePort } from './service.js'

export interface IpList {
  readonly href: string
  readonly name: string
  readonly ranges: readonly AddressEntry[]
}

/**
 * Who a rule talks about: exactly one kind of reference. Label and label-group actors combine
 * the vendor's way (one type ORed, types ANDed) and may be exclusions (see label-match.ts).
 */
export type Actor =
  | { readonly kind: 'ams' }
  | { readonly kind: 'label'; readonly href: string; readonly exclusion?: true }
  | { readonly kind: 'label_group'; readonly href: string; readonly exclusion?: true }
  | { readonly kind: 'workload'; readonly href: string }
  | { readonly kind: 'ip_list'; readonly href: string }
  | { readonly kind: 'virtual_service'; readonly href: string }

/** A service reference inside a rule: a named service or an inline port. */
export type ServiceRef = { readonly href: string } | ServicePort

/** What the label actors (and `ams`) of a side select. */
export const RESOLVE_AS = ['workloads', 'virtual_services'] as const
export type ResolveAs = (typeof RESOLVE_AS)[number]

export const RULE_SIDES = ['providers', 'consumers'] as const
export type RuleSide = (typeof RULE_SIDES)[number]

export interface Rule {
  readonly href: string
  readonly enabled: boolean
  readonly providers: readonly Actor[]
  readonly consumers: readonly Actor[]
  /** Ports of the providers' workloads; a virtual service provider brings its own. */
  readonly services: readonly ServiceRef[]
  /** Consumers may sit outside the rule set's scope (an extra-scope rule). */
  readonly unscopedConsumers: boolean
  /** What the providers' label actors select; absent: workloads only. */
  readonly providersResolveAs?: readonly ResolveAs[]
  /** The sides whose workloads are peers by their interfaces' subnets, not their addresses. */
  readonly useWorkloadSubnets?: readonly RuleSide[]
}

export interface DenyRule extends Rule {
  /** Override deny: evaluated before every allow rule. */
  readonly override: boolean
}

/** A scope entry: a label or label group, possibly excluded, combined as label-match.ts says. */
export type ScopeRef = LabelRef

export interface RuleSet {
  readonly href: string
  readonly name: string
  readonly enabled: boolean
  /** The rule set applies once per scope; an empty scope: everywhere. No scopes: everywhere. */
  readonly scopes: readonly (readonly ScopeRef[])[]
  readonly rules: readonly Rule[]
  readonly denyRules: readonly DenyRule[]
}

/** A port of a virtual service, changed for one bound workload (the service listens there). */
export interface PortOverride {
  /** The virtual service's port this replaces (the first of its range); absent: every port. */
  readonly port?: number
  /** Its protocol; absent: both. */
  readonly proto?: number
  readonly newPort: number
  readonly newToPort?: number
}

/**
 * A service on some workloads, named and labelled on its own: rules reach it on its ports on
 * the workloads bound to it, and at its own addresses.
 */
export interface VirtualService {
  readonly href: string
  readonly name: string
  readonly labels: readonly string[]
  /** Its ports, or those of the named service. */
  readonly ports: readonly ServicePort[]
  readonly service?: string
  /** Further addresses consumers reach it at (IPs or CIDRs), on its ports. */
  readonly ipOverrides: readonly string[]
  /** Addresses it is reached at, on `port` when given (its protocols), else on its ports. */
  readonly serviceAddresses: readonly { readonly ip: string; readonly port?: number }[]
}

/** A virtual service running on a workload (not provisioned: it applies at once). */
export interface ServiceBinding {
  readonly href: string
  readonly virtualService: string
  readonly workload: string
  readonly portOverrides: readonly PortOverride[]
}
