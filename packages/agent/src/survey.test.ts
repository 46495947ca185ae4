import { parseIptablesSave, parseNftJson } from '@palisade/firewall'
import type { Ruleset } from '@palisade/firewall'
import { describe, expect, it } from 'vitest'
import { surveyRuleset } from './survey.js'

const nft = (
  tables: {
    family: string
    name: string
    chains: { name: string; hook?: string; rules?: unknown[][] }[]
  }[],
) =>
  parseNftJson(
    JSON.stringify({
      nftables: tables.flatMap((t) => [
        { table: { family: t.family, name: t.name } },
        ...t.chains.flatMap((c) => [
          {
            chain: {
              family: t.family,
              table: t.name,
              name: c.name,
              ...(c.hook && { type: 'filter', hook: c.hook, prio: 10, policy: 'accept' }),
            },
          },
          ...(c.rules ?? []).map((expr) => ({
            rule: { family: t.family, table: t.name, chain: c.name, expr },
          })),
        ]),
      ]),
    }),
  )
const accept22 = [
  { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } },
  { accept: null },
]

describe('host survey', () => {
  it('finds firewalld, its zones and what they open, and advises as the seed does', () => {
    const rs: Ruleset = {
      tables: nft([
        {
          family: 'inet',
          name: 'firewalld',
          chains: [
            { name: 'filter_INPUT', hook: 'input' },
            { name: 'filter_IN_public_allow', rules: [accept22] },
          ],
        },
      ]),
      ipsets: [],
    }
    const s = surveyRuleset(rs)
    expect(s.firewalls).toEqual([
      {
        kind: 'firewalld',
        evidence: ['nft inet firewalld'],
        zones: [{ zone: 'public', allows: [JSON.stringify(accept22)] }],
      },
    ])
    expect(s.recommendations[0]?.message).toMatch(
      /firewalld is active .* disabling it is recommended \(not required\)/,
    )
  })

  it('finds Docker, ufw and hand-written rules in iptables', () => {
    const t = parseIptablesSave(
      [
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD DROP [0:0]',
        ':DOCKER-USER - [0:0]',
        ':ufw-before-input - [0:0]',
        '-A INPUT -j ufw-before-input',
        '-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT',
        '-A FORWARD -j DOCKER-USER',
        'COMMIT',
      ].join('\n'),
      'ip',
      'iptables-nft',
    ).tables
    const kinds = surveyRuleset({ tables: t, ipsets: [] })
      .firewalls.map((f) => f.kind)
      .sort()
    expect(kinds).toEqual(['docker', 'manual', 'ufw'])
  })

  it('warns that a Kubernetes node is not supported', () => {
    const rs: Ruleset = {
      tables: nft([
        { family: 'ip', name: 'kube-proxy', chains: [{ name: 'filter-input', hook: 'input' }] },
      ]),
      ipsets: [],
    }
    const s = surveyRuleset(rs)
    expect(s.firewalls.map((f) => f.kind)).toEqual(['kubernetes'])
    expect(s.recommendations[0]).toMatchObject({
      severity: 'warning',
      message: expect.stringMatching(/Kubernetes node .* not supported/) as unknown,
    })
  })

  it('ignores our own table, and reports active services', () => {
    const rs: Ruleset = {
      tables: nft([
        { family: 'inet', name: 'palisade', chains: [{ name: 'input', hook: 'input' }] },
      ]),
      ipsets: [],
    }
    const s = surveyRuleset(rs, ['SuSEfirewall2'])
    expect(s.foreignTables).toEqual([])
    expect(s.firewalls).toEqual([
      { kind: 'suse-firewall', evidence: ['service SuSEfirewall2 is active'] },
    ])
  })
})
