/**
 * The words people read for the API's values: every enum the console shows goes through here,
 * so no raw value (`visibility_only`, `flow_summary`) reaches a page.
 */

const ENFORCEMENT: Record<string, string> = {
  idle: 'Idle',
  visibility_only: 'Visibility only',
  selective: 'Selective',
  full: 'Full',
}
/** What each enforcement mode does, for choices and confirmations. */
export const ENFORCEMENT_MEANING: Record<string, string> = {
  idle: 'the agent programs nothing and removes its rules',
  visibility_only: 'nothing is blocked; connections a rule would block are reported',
  selective: 'only deny rules block; everything else is allowed and reported',
  full: 'everything a rule does not allow is blocked',
}
const VISIBILITY: Record<string, string> = {
  flow_off: 'Off',
  flow_drops: 'Blocked',
  flow_summary: 'Blocked + allowed',
  flow_full_detail: 'Enhanced data collection',
  enhanced_data_collection: 'Enhanced data collection',
}
const FIREWALL_MODE: Record<string, string> = {
  exclusive: 'Exclusive',
  coexistence_primary: 'Coexistence, primary',
  coexistence_non_primary: 'Coexistence, non-primary',
}
const DECISION: Record<string, string> = {
  allowed: 'Allowed',
  potentially_blocked: 'Potentially blocked',
  blocked: 'Blocked',
  unknown: 'Unknown',
}
const SYNC: Record<string, string> = { synced: 'Synced', syncing: 'Syncing' }
const HEALTH: Record<string, string> = {
  healthy: 'Healthy',
  unhealthy: 'Unhealthy',
  starting: 'Starting',
  unknown: 'Not reported',
}
const AGENT_STATUS: Record<string, string> = {
  active: 'Online',
  offline: 'Offline',
  suspended: 'Suspended',
  stopped: 'Stopped',
  unpaired: 'Unpaired',
}
const TAMPERING: Record<string, string> = {
  none: 'None',
  repaired: 'Repaired',
  ongoing: 'Ongoing',
  ended: 'Ended',
}
const UPDATE_TYPE: Record<string, string> = {
  create: 'Addition',
  update: 'Modification',
  delete: 'Deletion',
}
const POLICY_TYPE: Record<string, string> = {
  rule_sets: 'Rule set',
  services: 'Service',
  ip_lists: 'IP list',
  label_groups: 'Label group',
  firewall_settings: 'Firewall settings',
  enforcement_boundaries: 'Enforcement boundary',
  virtual_services: 'Virtual service',
}
const SEVERITY: Record<string, string> = {
  emerg: 'Emergency',
  alert: 'Alert',
  crit: 'Critical',
  err: 'Error',
  warning: 'Warning',
  notice: 'Notice',
  info: 'Info',
  debug: 'Debug',
}
const PROTO: Record<number, string> = { [-1]: 'any', 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' }

/** A readable word for a value nobody listed: `some_new_value` reads "Some new value". */
const fallback = (v: string) => (v ? v[0]?.toUpperCase() + v.slice(1).replace(/_/g, ' ') : '—')
const from = (table: Record<string, string>) => (v: string | null | undefined) =>
  v === null || v === undefined ? '—' : (table[v] ?? fallback(v))

export const enforcementName = from(ENFORCEMENT)
export const visibilityName = from(VISIBILITY)
export const firewallModeName = from(FIREWALL_MODE)
export const decisionName = from(DECISION)
export const syncName = from(SYNC)
export const healthName = from(HEALTH)
export const agentStatusName = from(AGENT_STATUS)
export const tamperingName = from(TAMPERING)
export const updateTypeName = from(UPDATE_TYPE)
export const policyTypeName = from(POLICY_TYPE)
export const severityName = from(SEVERITY)
export const protoName = (n: number) => PROTO[n] ?? `proto ${n}`
const EVENT_SUBJECT: Record<string, string> = {
  sec_policy: 'Policy',
  sec_rule: 'Allow rule',
  deny_rule: 'Deny rule',
  ip_list: 'IP list',
  rule_set: 'Rule set',
  label_group: 'Label group',
  firewall_settings: 'Firewall settings',
  pairing_key: 'Activation code',
  api_key: 'API key',
  agents: 'Agents',
}
const EVENT_VERB: Record<string, string> = {
  create: 'created',
  update: 'updated',
  delete: 'deleted',
  activate: 'activated',
  deactivate: 'deactivated',
  unpair: 'unpaired',
  sign_in: 'signed in',
  sign_out: 'signed out',
  login_failed: 'sign-in failed',
  authentication_failed: 'authentication failed',
  goodbye: 'stopped',
  firewall_apply_failed: 'firewall update failed',
  revert: 'reverted',
  restore: 'restored',
}
/** `rule_set.create` reads "Rule set created", `sec_policy.create` "Policy provisioned". */
export function eventTypeName(t: string): string {
  if (t === 'sec_policy.create') return 'Policy provisioned'
  const [subject = '', verb = ''] = t.split('.')
  return `${EVENT_SUBJECT[subject] ?? fallback(subject)} ${EVENT_VERB[verb] ?? verb.replace(/_/g, ' ')}`
}
