import { describe, expect, it } from 'vitest'
import { diffLines, policyLines } from './policy-lines.js'

const names = (href: string) =>
  ({
    '/orgs/1/labels/1': 'role: web',
    '/orgs/1/labels/2': 'env: prod',
    '/orgs/1/sec_policy/draft/services/1': 'HTTPS',
    '/orgs/1/sec_policy/draft/ip_lists/1': 'Known bad',
  })[href]

describe('policy objects as lines', () => {
  it('writes a rule set as its name, scope and rules, by name', () => {
    const lines = policyLines(
      'rule_sets',
      {
        name: 'web',
        scopes: [[{ label: { href: '/orgs/1/labels/2' } }]],
        rules: [
          {
            id: 1,
            consumers: [{ actors: 'ams' }],
            providers: [{ label: { href: '/orgs/1/labels/1' } }],
            ingress_services: [{ href: '/orgs/1/sec_policy/draft/services/1' }],
            unscoped_consumers: true,
          },
        ],
        deny_rules: [
          {
            id: 1,
            consumers: [{ ip_list: { href: '/orgs/1/sec_policy/draft/ip_lists/1' } }],
            providers: [{ actors: 'ams' }],
            ingress_services: [],
            override: true,
          },
        ],
      },
      names,
    )
    expect(lines).toEqual([
      'Name: web',
      'Scope: env: prod',
      'Override deny Known bad (IP list) → All workloads on All services',
      'Allow All workloads → role: web on HTTPS (sources outside the scope too)',
    ])
    expect(lines.join()).not.toContain('/orgs/')
  })

  it('says which scope labels and rule actors are excluded, so a provision preview reads true', () => {
    const lines = policyLines(
      'rule_sets',
      {
        name: 'all but web',
        scopes: [
          [{ label: { href: '/orgs/1/labels/1' }, exclusion: true }],
          [{ label: { href: '/orgs/1/labels/2' } }],
        ],
        rules: [
          {
            id: 1,
            consumers: [{ label: { href: '/orgs/1/labels/2' }, exclusion: true }],
            providers: [{ actors: 'ams' }],
            ingress_services: [],
          },
        ],
      },
      names,
    )
    expect(lines).toEqual([
      'Name: all but web',
      'Scope: not role: web or env: prod',
      'Allow all workloads with an env label except env: prod → All workloads on All services',
    ])
  })

  it('numbers coexistence scopes as the settings page does', () => {
    expect(
      policyLines(
        'firewall_settings',
        {
          firewall_coexistence: [
            { scope: [], illumio_primary: true },
            {
              scope: [{ href: '/orgs/1/labels/2' }],
              illumio_primary: false,
              workload_mode: 'enforced',
            },
          ],
        },
        names,
      ),
    ).toEqual([
      'Coexistence scope #1: all workloads; enforcement All; Palisade primary: Yes',
      'Coexistence scope #2: env: prod; enforcement Enforced; Palisade primary: No',
    ])
  })

  it('diffs line by line: removed where they stood, then added', () => {
    expect(diffLines(['a', 'b', 'c'], ['a', 'c', 'd'])).toEqual([
      { text: 'a', change: 'same' },
      { text: 'b', change: 'removed' },
      { text: 'c', change: 'same' },
      { text: 'd', change: 'added' },
    ])
    expect(diffLines([], ['x'])).toEqual([{ text: 'x', change: 'added' }])
  })
})
