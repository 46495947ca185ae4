import { describe, expect, it } from 'vitest'
import { computeHostPolicy } from './host-policy.js'
import type { Actor, RuleSet } from './rules.js'
import { AMS, allow, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const x = label(3, 'role', 'x')
const prod = label(4, 'env', 'prod')
const dev = label(5, 'env', 'dev')
const locA = label(6, 'loc', 'a')
const locB = label(7, 'loc', 'b')
const labels = [web, db, x, prod, dev, locA, locB]
const W = workload('web', ['198.18.0.11', 'fd00::11'], [web, prod, locA])
const WD = workload('webdev', '198.18.0.12', [web, dev, locA])
const X = workload('x', ['198.18.0.15', 'fd00::15'], [x, prod, locA])
const D = workload('db', '198.18.0.21', [db, prod, locA])
const DB = workload('db-b', '198.18.0.22', [db, prod, locB])
const NOROLE = workload('norole', '198.18.0.30', [prod, locA])
const all = [W, WD, X, D, DB, NOROLE]
const not = (l: { href: string }): Actor => ({ kind: 'label', href: l.href, exclusion: true })
const pg = [{ proto: 6, port: 5432 }]

/** The inbound peers the db host gets from one rule. */
const inboundPeers = (consumers: Actor[], providers: Actor[] = [lbl(db)]) => {
  const r = allow(providers, consumers, pg)
  const s = snapshot({ labels, workloads: all, ruleSets: [ruleSet([r])] })
  return computeHostPolicy(s, D.href).rules.find((h) => h.key === `${r.href}#in`)?.peers
}

describe('rule actors, the vendor way', () => {
  it('"all workloads except role x": every workload with another role, not x and not one without a role', () => {
    expect(inboundPeers([not(x)])).toEqual({
      v4: ['198.18.0.11/32', '198.18.0.12/32', '198.18.0.21/32', '198.18.0.22/32'],
      v6: ['fd00::11/128'],
    })
  })

  it('ANDs label types: role web and env prod is the intersection, not the union', () => {
    expect(inboundPeers([lbl(web), lbl(prod)])).toEqual({
      v4: ['198.18.0.11/32'],
      v6: ['fd00::11/128'],
    })
  })

  it('ORs labels of one type: env prod or env dev', () => {
    expect(inboundPeers([lbl(web), lbl(prod), lbl(dev)])).toEqual({
      v4: ['198.18.0.11/32', '198.18.0.12/32'],
      v6: ['fd00::11/128'],
    })
  })

  it('ORs workloads and IP lists with the label part', () => {
    const peers = inboundPeers([lbl(web), lbl(dev), { kind: 'workload', href: X.href }])
    expect(peers).toEqual({ v4: ['198.18.0.12/32', '198.18.0.15/32'], v6: ['fd00::15/128'] })
  })

  it('applies an exclusion on the provider side: the excluded host gets no inbound rule', () => {
    const r = allow([lbl(db), not(locB)], [lbl(web)], pg)
    const s = snapshot({ labels, workloads: all, ruleSets: [ruleSet([r])] })
    expect(computeHostPolicy(s, D.href).rules.map((h) => h.key)).toEqual([`${r.href}#in`])
    expect(computeHostPolicy(s, DB.href).rules).toEqual([])
    // and the consumers' outbound peers leave it out
    expect(computeHostPolicy(s, W.href).rules[0]?.peers).toEqual({
      v4: ['198.18.0.21/32'],
      v6: [],
    })
  })
})

describe('rule-set scopes, the vendor way', () => {
  const r = allow([lbl(db)], [lbl(web)], pg)
  const scoped = (scope: RuleSet['scopes']) =>
    snapshot({ labels, workloads: all, ruleSets: [ruleSet([r], [], scope)] })

  it('a scope excluding a label leaves its hosts out, on both sides', () => {
    const s = scoped([[{ label: locB.href, exclusion: true }]])
    expect(computeHostPolicy(s, DB.href).rules, 'db-b is loc b: out of scope').toEqual([])
    expect(computeHostPolicy(s, D.href).rules[0]?.peers).toEqual({
      v4: ['198.18.0.11/32', '198.18.0.12/32'],
      v6: ['fd00::11/128'],
    })
    expect(computeHostPolicy(s, W.href).rules[0]?.peers, 'web reaches db only').toEqual({
      v4: ['198.18.0.21/32'],
      v6: [],
    })
  })

  it('a scope excluding env prod holds the other hosts (before, it held the prod ones)', () => {
    const s = scoped([[{ label: prod.href, exclusion: true }]])
    expect(computeHostPolicy(s, D.href).rules, 'db is prod: out of scope').toEqual([])
    // webdev is in scope, but no db is: it may reach nobody
    expect(computeHostPolicy(s, WD.href).rules.map((h) => h.peers)).toEqual([{ v4: [], v6: [] }])
  })

  it('an extra-scope rule gives consumers outside the scope their outbound rule', () => {
    const extra = allow([lbl(db)], [lbl(web)], pg, { unscopedConsumers: true })
    const s = snapshot({
      labels,
      workloads: all,
      ruleSets: [ruleSet([extra], [], [[{ label: locB.href }]])],
    })
    expect(computeHostPolicy(s, DB.href).rules[0]?.peers).toEqual({
      v4: ['198.18.0.11/32', '198.18.0.12/32'],
      v6: ['fd00::11/128'],
    })
    expect(computeHostPolicy(s, W.href).rules).toEqual([
      expect.objectContaining({
        key: `${extra.href}#out`,
        peers: { v4: ['198.18.0.22/32'], v6: [] },
      }),
    ])
  })
})

describe('firewall-settings scopes', () => {
  const group = {
    href: '/orgs/1/sec_policy/draft/label_groups/dbs',
    key: 'role',
    name: 'dbs',
    labels: [db.href],
    subGroups: [],
  }
  const settings = (scopes: RuleSet['scopes']) =>
    snapshot({
      labels,
      labelGroups: [group],
      workloads: all,
      firewallSettings: {
        firewallCoexistence: [],
        blockedConnectionRejectScopes: scopes,
        loopbackInterfacesInPolicyScopes: [],
      },
    })

  it('a label group scope holds its members only (it once held every workload)', () => {
    const s = settings([[{ labelGroup: group.href }]])
    expect(computeHostPolicy(s, D.href).rejectBlocked).toBe(true)
    expect(computeHostPolicy(s, W.href).rejectBlocked).toBe(false)
  })

  it('an excluded label leaves its hosts out', () => {
    const s = settings([[{ labelGroup: group.href }, { label: locB.href, exclusion: true }]])
    expect([D, DB].map((w) => computeHostPolicy(s, w.href).rejectBlocked)).toEqual([true, false])
  })

  it('an empty scope holds every workload; no scope holds none', () => {
    expect(computeHostPolicy(settings([[]]), W.href).rejectBlocked).toBe(true)
    expect(computeHostPolicy(settings([]), W.href).rejectBlocked).toBe(false)
  })
})

describe('workload subnets', () => {
  it('uses the subnets of the side that asks for them, the address where none is known', () => {
    const wide = workload('wide', '198.18.4.9', [web, prod], {
      interfaces: [
        { name: 'eth0', address: '198.18.4.9', cidrBlock: 24 },
        { name: 'eth1', address: 'fd00:4::9', cidrBlock: 64 },
      ],
    })
    const r = allow([lbl(db)], [lbl(web), lbl(prod)], pg, { useWorkloadSubnets: ['consumers'] })
    const s = snapshot({ labels, workloads: [wide, W, D], ruleSets: [ruleSet([r])] })
    expect(computeHostPolicy(s, D.href).rules[0]?.peers).toEqual({
      v4: ['198.18.0.11/32', '198.18.4.0/24'],
      v6: ['fd00::11/128', 'fd00:4::/64'],
    })
    // the providers' side is not asked: the consumers reach the db's address only
    expect(computeHostPolicy(s, wide.href).rules[0]?.peers).toEqual({
      v4: ['198.18.0.21/32'],
      v6: [],
    })
  })
})

describe('all workloads', () => {
  it('ams with a label is still every workload', () => {
    expect(inboundPeers([AMS, lbl(x)])).toEqual({
      v4: [
        '198.18.0.11/32',
        '198.18.0.12/32',
        '198.18.0.15/32',
        '198.18.0.21/32',
        '198.18.0.22/32',
        '198.18.0.30/32',
      ],
      v6: ['fd00::11/128', 'fd00::15/128'],
    })
  })
})
