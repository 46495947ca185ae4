export * from './decision.js'
export * from './event.js'
export * from './firewall-settings.js'
export * from './flow.js'
export type {
  Direction,
  DocRule,
  HostPolicy,
  HostRule,
  PolicyDoc,
  PolicySnapshot,
  RuleAction,
  SetRef,
} from './host-policy.js'
export { RULE_ACTIONS, computeHostPolicy, hostPolicyComputer } from './host-policy.js'
export * from './host-policy-affected.js'
export * from './ip.js'
export * from './label-match.js'
export * from './labels.js'
export * from './mode.js'
export * from './policy-docs.js'
export * from './rules.js'
export * from './service.js'
export * from './workload.js'
export * from './local-policy.js'
export * from './check.js'
export * from './host-policy-check.js'
