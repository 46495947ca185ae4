import { describe, expect, it } from 'vitest'
import {
  draftHref,
  idOf,
  isDraftObjectHref,
  isWorkloadHrefOf,
  policyObjectHref,
  ruleHref,
} from './hrefs.js'

describe('hrefs', () => {
  it.each([
    ['draft', 'rule_sets', '3', '/orgs/1/sec_policy/draft/rule_sets/3'],
    ['active', 'ip_lists', '1', '/orgs/1/sec_policy/active/ip_lists/1'],
    ['7', 'services', '2', '/orgs/1/sec_policy/7/services/2'],
    [
      'draft',
      'firewall_settings',
      'firewall_settings',
      '/orgs/1/sec_policy/draft/firewall_settings',
    ],
  ] as const)('names a policy object in version %s: %s %s', (pv, type, id, href) => {
    expect(policyObjectHref(1, pv, type, id)).toBe(href)
  })

  it.each([
    ['/orgs/1/sec_policy/active/ip_lists/1', '/orgs/1/sec_policy/draft/ip_lists/1'],
    ['/orgs/1/sec_policy/12/services/2', '/orgs/1/sec_policy/draft/services/2'],
    ['/orgs/1/sec_policy/draft/services/2', '/orgs/1/sec_policy/draft/services/2'],
    ['/orgs/1/labels/4', '/orgs/1/labels/4'],
  ])('reads %s as the draft href %s', (href, draft) => {
    expect(draftHref(href)).toBe(draft)
  })

  it('builds rule hrefs under their rule set, and reads ids and kinds back', () => {
    expect(ruleHref('/orgs/1/sec_policy/active/rule_sets/3', 'deny_rules', 5)).toBe(
      '/orgs/1/sec_policy/active/rule_sets/3/deny_rules/5',
    )
    expect(idOf('/orgs/1/workloads/ab-cd')).toBe('ab-cd')
    expect(isWorkloadHrefOf(1, '/orgs/1/workloads/x')).toBe(true)
    expect(isWorkloadHrefOf(2, '/orgs/1/workloads/x')).toBe(false)
    expect(isDraftObjectHref('/orgs/1/sec_policy/draft/services/2')).toBe(true)
    expect(isDraftObjectHref('/orgs/1/labels/2')).toBe(false)
  })
})
