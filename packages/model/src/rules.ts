import type { AddressEntry } from './ip.js'
import type { ServicePort } from './service.js'

export interface IpList {
  readonly href: string
  readonly name: string
  readonly ranges: readonly AddressEntry[]
}

/** Who a rule talks about: exactly one kind of reference. */
export type Actor =
  | { readonly kind: 'ams' }
  | { readonly kind: 'label'; readonly href: string }
  | { readonly kind: 'label_group'; readonly href: string }
  | { readonly kind: 'workload'; readonly href: string }
  | { readonly kind: 'ip_list'; readonly href: string }

/** A service reference inside a rule: a named service or an inline port. */
export type ServiceRef = { readonly href: string } | ServicePort

export interface Rule {
  readonly href: string
  readonly enabled: boolean
  readonly providers: readonly Actor[]
  readonly consumers: readonly Actor[]
  readonly services: readonly ServiceRef[]
  /** Consumers may sit outside the rule set's scope (an extra-scope rule). */
  readonly unscopedConsumers: boolean
}

export interface DenyRule extends Rule {
  /** Override deny: evaluated before every allow rule. */
  readonly override: boolean
}

/** A scope entry: a label or label group, ANDed with the other entries of the scope. */
export type ScopeRef = { readonly label: string } | { readonly labelGroup: string }

export interface RuleSet {
  readonly href: string
  readonly name: string
  readonly enabled: boolean
  /** Each scope is a list ANDed; the rule set applies once per scope. Empty list: everywhere. */
  readonly scopes: readonly (readonly ScopeRef[])[]
  readonly rules: readonly Rule[]
  readonly denyRules: readonly DenyRule[]
}
