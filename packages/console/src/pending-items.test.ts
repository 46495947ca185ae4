import { describe, expect, it } from 'vitest'
import { changeSubset, countsText, pendingItems, titleOf, typeCount } from './pending-items.js'

const item = (type: string, href: string, name: string | null, update_type = 'update') => ({
  type,
  href,
  update_type,
  draft: name === null ? null : { name },
  active: null,
})

describe('pending changes as the console names and asks about them', () => {
  it('flattens the listing by type, and names each change by type and name', () => {
    const items = pendingItems({
      services: [
        {
          href: '/orgs/1/sec_policy/draft/services/1',
          update_type: 'create',
          draft: { name: 'Redis' },
          active: null,
        },
      ],
      firewall_settings: [
        {
          href: '/orgs/1/sec_policy/draft/firewall_settings',
          update_type: 'update',
          draft: {},
          active: {},
        },
      ],
    })
    expect(items.map(titleOf)).toEqual(['Service: Redis', 'Firewall settings'])
    expect(items.map((i) => i.type)).toEqual(['services', 'firewall_settings'])
  })

  it('names chosen changes as the API change_subset, by type', () => {
    expect(
      changeSubset([
        item('services', 's1', 'a'),
        item('rule_sets', 'r1', 'b'),
        item('services', 's2', 'c'),
      ]),
    ).toEqual({ services: [{ href: 's1' }, { href: 's2' }], rule_sets: [{ href: 'r1' }] })
    expect(changeSubset([])).toEqual({})
  })

  it.each([
    ['rule_sets', 1, '1 rule set'],
    ['rule_sets', 2, '2 rule sets'],
    ['ip_lists', 2, '2 IP lists'],
    ['label_groups', 1, '1 label group'],
  ])('counts %s × %i as %s', (type, n, text) => {
    expect(typeCount(type, n)).toBe(text)
  })

  it('sums the pending changes by type, the firewall settings by name', () => {
    expect(
      countsText([
        item('ip_lists', 'i1', 'x'),
        item('firewall_settings', 'f', null),
        item('ip_lists', 'i2', 'y'),
        item('services', 's1', 'z'),
      ]),
    ).toBe('2 IP lists, the firewall settings, 1 service')
  })
})
