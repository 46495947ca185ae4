import { describe, expect, it } from 'vitest'
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
  })[href]

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
