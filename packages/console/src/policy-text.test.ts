import { describe, expect, it } from 'vitest'
import { actorsOf, choicesOf } from './actor-choices.js'
import type { Actor } from './policy-text.js'
import {
  actorText,
  addressesText,
  parsePortsChecked,
  portsText,
  servicesText,
  sideText,
} from './policy-text.js'

const names = (href: string) =>
  ({
    '/orgs/1/labels/1': 'role: web',
    '/orgs/1/sec_policy/draft/ip_lists/1': 'Known bad',
    '/orgs/1/sec_policy/draft/services/2': 'PostgreSQL',
    '/orgs/1/labels/2': 'role: db',
    '/orgs/1/labels/3': 'env: prod',
    '/orgs/1/labels/4': 'env: dev',
    '/orgs/1/sec_policy/draft/label_groups/1': 'Front ends',
    '/orgs/1/sec_policy/draft/virtual_services/1': 'Payments VIP',
    '/orgs/1/workloads/1': 'db-1',
  })[href]

const label = (n: number, exclusion?: true): Actor => ({
  label: { href: `/orgs/1/labels/${n}` },
  ...(exclusion && { exclusion }),
})
const group = (exclusion?: true): Actor => ({
  label_group: { href: '/orgs/1/sec_policy/draft/label_groups/1' },
  ...(exclusion && { exclusion }),
})
/** The label group's type, as the page gives it (its `key`); labels' from their names. */
const typeOf = (href: string) =>
  href.includes('label_groups') ? 'role' : names(href)?.split(': ')[0]

describe('ports as typed', () => {
  it.each([
    ['tcp/443', [{ proto: 6, port: 443 }], []],
    [
      'TCP/443, udp/53',
      [
        { proto: 6, port: 443 },
        { proto: 17, port: 53 },
      ],
      [],
    ],
    ['tcp/8000-8010', [{ proto: 6, port: 8000, to_port: 8010 }], []],
    ['icmp', [{ proto: 1 }], []],
    ['47', [{ proto: 47 }], []],
    ['', [], []],
    [
      'tcp/https',
      [],
      ['"tcp/https" is not a port: write it as tcp/443, udp/53, tcp/8000-8010 or icmp'],
    ],
    [
      'foo/1, tcp/22',
      [{ proto: 6, port: 22 }],
      ['"foo/1" is not a port: write it as tcp/443, udp/53, tcp/8000-8010 or icmp'],
    ],
    [
      'tcp/1-2-3',
      [],
      ['"tcp/1-2-3" is not a port: write it as tcp/443, udp/53, tcp/8000-8010 or icmp'],
    ],
  ])('%j', (text, ports, problems) => {
    expect(parsePortsChecked(text)).toEqual({ ports, problems })
  })

  it('reads back what it writes', () => {
    const text = 'tcp/443, udp/53, tcp/8000-8010, icmp'
    expect(portsText(parsePortsChecked(text).ports)).toBe(text)
  })
})

describe('rules in words', () => {
  it('names each kind of actor, and says when a reference is gone', () => {
    expect(actorText({ actors: 'ams' }, names)).toBe('All workloads')
    expect(actorText({ label: { href: '/orgs/1/labels/1' } }, names)).toBe('role: web')
    expect(
      actorText({ ip_list: { href: '/orgs/1/sec_policy/active/ip_lists/1' } }, (h) =>
        names(h.replace('active', 'draft')),
      ),
    ).toBe('Known bad (IP list)')
    expect(actorText({ label: { href: '/orgs/1/labels/9' } }, names)).toBe(
      'label /orgs/1/labels/9 (deleted)',
    )
    expect(sideText([{ actors: 'ams' }, { label: { href: '/orgs/1/labels/1' } }], names)).toBe(
      'All workloads or role: web',
    )
  })

  it('reads an excluded label as "all workloads with a label of its type except it"', () => {
    expect(sideText([label(2, true)], names)).toBe(
      'all workloads with a role label except role: db',
    )
    expect(sideText([label(2, true), label(3, true)], names)).toBe(
      'all workloads with role and env labels except role: db, env: prod',
    )
    expect(actorText(label(2, true), names)).toBe('not role: db')
    expect(sideText([label(3, true)], names)).toBe(
      'all workloads with an env label except env: prod',
    )
  })

  it('reads labels the way they match: one type ORed, types ANDed, exclusions within a type', () => {
    expect(sideText([label(3), label(4), label(1)], names)).toBe(
      '(env: prod or env: dev) and role: web',
    )
    expect(sideText([label(1), label(3, true)], names)).toBe(
      'role: web and any env except env: prod',
    )
    expect(sideText([group(), label(2, true)], names, typeOf)).toBe(
      'Front ends (label group) except role: db',
    )
    expect(sideText([group(true)], names, typeOf)).toBe(
      'all workloads with a role label except Front ends (label group)',
    )
  })

  it('keeps workloads, IP lists and virtual services as alternatives to the labels', () => {
    expect(
      sideText(
        [
          { workload: { href: '/orgs/1/workloads/1' } },
          label(2, true),
          { virtual_service: { href: '/orgs/1/sec_policy/draft/virtual_services/1' } },
        ],
        names,
      ),
    ).toBe(
      'db-1 or all workloads with a role label except role: db or Payments VIP (virtual service)',
    )
    expect(
      actorText(
        { virtual_service: { href: '/orgs/1/sec_policy/draft/virtual_services/9' } },
        names,
      ),
    ).toBe('virtual service /orgs/1/sec_policy/draft/virtual_services/9 (deleted)')
  })

  it('keeps an exclusion and a virtual service through the rule form', () => {
    const side: Actor[] = [
      label(2, true),
      group(true),
      { virtual_service: { href: '/orgs/1/sec_policy/draft/virtual_services/1' } },
      { workload: { href: '/orgs/1/workloads/1' } },
    ]
    const chosen = choicesOf(side, names)
    expect(chosen.map((c) => [c.kind, c.text])).toEqual([
      ['excluded label', 'role: db'],
      ['excluded label group', 'Front ends'],
      ['virtual service', 'Payments VIP'],
      ['workload', 'db-1'],
    ])
    expect(actorsOf(chosen)).toEqual(side)
  })

  it('writes services by name, ports as written, and none as all services', () => {
    expect(servicesText([], names)).toBe('All services')
    expect(
      servicesText(
        [{ href: '/orgs/1/sec_policy/draft/services/2' }, { proto: 6, port: 8443 }],
        names,
      ),
    ).toBe('PostgreSQL, tcp/8443')
    expect(servicesText([{ proto: -1 }], names)).toBe('All services')
  })

  it('shortens long address sets', () => {
    expect(addressesText('any')).toBe('any address')
    expect(addressesText({ v4: [], v6: [] })).toBe('no address')
    expect(addressesText({ v4: ['10.0.0.1/32', '10.0.0.2/32'], v6: ['::1/128'] }, 2)).toBe(
      '10.0.0.1/32, 10.0.0.2/32 +1',
    )
  })
})
