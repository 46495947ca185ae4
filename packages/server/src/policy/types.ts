/** The provisionable policy types, and the names the audit log gives one object of each. */
export const POLICY_TYPES = [
  'ip_lists',
  'services',
  'rule_sets',
  'label_groups',
  'firewall_settings',
  'enforcement_boundaries',
  'virtual_services',
] as const
export type PolicyType = (typeof POLICY_TYPES)[number]

/** The types with many objects each (firewall settings are one per org). */
export type ObjectType = Exclude<PolicyType, 'firewall_settings'>
export const OBJECT_TYPES = POLICY_TYPES.filter((t): t is ObjectType => t !== 'firewall_settings')

export const isPolicyType = (x: string): x is PolicyType =>
  (POLICY_TYPES as readonly string[]).includes(x)

/** One object of a type, as events name it. */
export const SINGULAR: Record<PolicyType, string> = {
  ip_lists: 'ip_list',
  services: 'service',
  rule_sets: 'rule_set',
  label_groups: 'label_group',
  firewall_settings: 'firewall_settings',
  enforcement_boundaries: 'enforcement_boundary',
  virtual_services: 'virtual_service',
}

/** The types whose objects are named by UUIDs, as the vendor's are; the others count up. */
export const UUID_TYPES: readonly PolicyType[] = ['virtual_services']

/** The rules of a rule set: the path segment of each kind, and one rule of it as events name it. */
export const RULE_KINDS = { sec_rules: 'sec_rule', deny_rules: 'deny_rule' } as const
export type RuleKind = keyof typeof RULE_KINDS
/** The field of a rule set's document that holds the rules of a kind. */
export const RULE_FIELDS = { sec_rules: 'rules', deny_rules: 'deny_rules' } as const
