import { describe, expect, it } from 'vitest'
import { computeHostPolicy } from './host-policy.js'
import { AMS, allow, deny, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const prod = label(3, 'env', 'prod')
const dev = label(4, 'env', 'dev')
const W1 = workload('web1', '198.18.0.11', [web, prod])
const W2 = workload('web2', ['198.18.0.12', '2001:db8::12'], [web, prod])
const D1 = workload('db1', '198.18.0.21', [db, prod])
const D2 = workload('db2', '198.18.0.22', [db, dev])

describe('host policy', () => {
  it('resolves label peers per direction, with services', () => {
    const r = allow([lbl(db)], [lbl(web)], [{ proto: 6, port: 5432 }])
    const s = snapshot({
      labels: [web, db, prod, dev],
      workloads: [W1, W2, D1, D2],
      ruleSets: [ruleSet([r])],
    })
    const dbPolicy = computeHostPolicy(s, D1.href)
    expect(dbPolicy.rules).toEqual([
      {
        key: `${r.href}#in`,
        ruleHref: r.href,
        action: 'allow',
        direction: 'inbound',
        peers: { v4: ['198.18.0.11/32', '198.18.0.12/32'], v6: ['2001:db8::12/128'] },
        services: [{ proto: 6, port: 5432 }],
      },
    ])
    const webPolicy = computeHostPolicy(s, W1.href)
    expect(webPolicy.rules).toEqual([
      {
        key: `${r.href}#out`,
        ruleHref: r.href,
        action: 'allow',
        direction: 'outbound',
        peers: { v4: ['198.18.0.21/32', '198.18.0.22/32'], v6: [] },
        services: [{ proto: 6, port: 5432 }],
      },
    ])
  })

  it('limits both sides to the scope unless consumers are unscoped', () => {
    const scoped = allow([lbl(db)], [AMS], [{ proto: 6, port: 5432 }])
    const extra = allow([lbl(db)], [lbl(web)], [{ proto: 6, port: 6432 }], {
      unscopedConsumers: true,
    })
    const s = snapshot({
      workloads: [W1, D1, D2],
      ruleSets: [ruleSet([scoped, extra], [], [[{ label: dev.href }]])],
    })
    const d2 = computeHostPolicy(s, D2.href)
    expect(d2.rules.map((r) => [r.key, r.peers])).toEqual([
      [`${scoped.href}#in`, { v4: ['198.18.0.22/32'], v6: [] }],
      // all workloads in scope include db2 itself, so it is also a consumer
      [`${scoped.href}#out`, { v4: ['198.18.0.22/32'], v6: [] }],
      [`${extra.href}#in`, { v4: ['198.18.0.11/32'], v6: [] }],
    ])
    expect(computeHostPolicy(s, D1.href).rules).toEqual([])
  })

  it('orders override-deny, allow, deny and keeps the action', () => {
    const a = allow([lbl(db)], [lbl(web)], [])
    const d = deny([lbl(db)], [lbl(web)], [{ proto: 17, port: 53 }])
    const o = deny([lbl(db)], [lbl(web)], [{ proto: 6, port: 22 }], true)
    const s = snapshot({ workloads: [D1, W1], ruleSets: [ruleSet([a], [d, o])] })
    expect(computeHostPolicy(s, D1.href).rules.map((r) => r.action)).toEqual([
      'override_deny',
      'allow',
      'deny',
    ])
  })

  it('resolves IP lists, exclusions and the any list', () => {
    const corp = {
      href: '/orgs/1/sec_policy/draft/ip_lists/2',
      name: 'corp',
      ranges: [{ from: '198.19.0.0/16' }, { from: '198.19.1.0/24', exclusion: true }],
    }
    const any = {
      href: '/orgs/1/sec_policy/draft/ip_lists/1',
      name: 'Any (0.0.0.0/0 and ::/0)',
      ranges: [{ from: '0.0.0.0/0' }, { from: '::/0' }],
    }
    const r1 = allow([lbl(db)], [{ kind: 'ip_list', href: corp.href }], [{ proto: 6, port: 443 }])
    const r2 = allow([{ kind: 'ip_list', href: any.href }], [lbl(db)], [{ proto: 6, port: 443 }])
    const s = snapshot({ workloads: [D1], ipLists: [corp, any], ruleSets: [ruleSet([r1, r2])] })
    const p = computeHostPolicy(s, D1.href)
    expect(p.rules.find((r) => r.key === `${r1.href}#in`)?.peers).toEqual({
      v4: [
        '198.19.0.0/24',
        '198.19.2.0/23',
        '198.19.4.0/22',
        '198.19.8.0/21',
        '198.19.16.0/20',
        '198.19.32.0/19',
        '198.19.64.0/18',
        '198.19.128.0/17',
      ],
      v6: [],
    })
    expect(p.rules.find((r) => r.key === `${r2.href}#out`)?.peers).toBe('any')
  })

  it("keeps an IP list's exclusions to that list", () => {
    const list = {
      href: '/orgs/1/sec_policy/draft/ip_lists/3',
      name: 'no-web1',
      ranges: [{ from: '198.18.0.0/24' }, { from: '198.18.0.11', exclusion: true }],
    }
    const other = {
      href: '/orgs/1/sec_policy/draft/ip_lists/4',
      name: 'only-web1',
      ranges: [{ from: '198.18.0.11' }],
    }
    const r = allow(
      [lbl(db)],
      [{ kind: 'ip_list', href: list.href }, { kind: 'ip_list', href: other.href }, lbl(web)],
      [{ proto: 6, port: 1 }],
    )
    const s = snapshot({ workloads: [W1, D1], ipLists: [list, other], ruleSets: [ruleSet([r])] })
    expect(computeHostPolicy(s, D1.href).rules[0]?.peers).toEqual({ v4: ['198.18.0.0/24'], v6: [] })
  })

  it('merges a rule seen through several scopes and expands named services', () => {
    const svc = {
      href: '/orgs/1/sec_policy/draft/services/9',
      name: 'pg',
      ports: [
        { proto: 6, port: 5432 },
        { proto: 6, port: 5433, toPort: 5440 },
      ],
    }
    const r = allow([lbl(db)], [lbl(web)], [{ href: svc.href }])
    const s = snapshot({
      workloads: [W1, D1, D2],
      services: [svc],
      ruleSets: [ruleSet([r], [], [[{ label: prod.href }], [{ label: db.href }]])],
    })
    const p = computeHostPolicy(s, D1.href)
    expect(p.rules).toHaveLength(1)
    // web1 is only in scope prod; db2 (dev) is in scope db but is no consumer
    expect(p.rules[0]?.peers).toEqual({ v4: ['198.18.0.11/32'], v6: [] })
    expect(p.rules[0]?.services).toEqual([
      { proto: 6, port: 5432 },
      { proto: 6, port: 5433, toPort: 5440 },
    ])
  })

  it('skips disabled rules and rule sets, and expands label groups', () => {
    const group = {
      href: '/orgs/1/sec_policy/draft/label_groups/g',
      key: 'role',
      name: 'all',
      labels: [web.href],
      subGroups: ['/orgs/1/sec_policy/draft/label_groups/h'],
    }
    const sub = {
      href: '/orgs/1/sec_policy/draft/label_groups/h',
      key: 'role',
      name: 'db',
      labels: [db.href],
      subGroups: [group.href],
    }
    const r = allow([{ kind: 'label_group', href: group.href }], [AMS], [])
    const off = allow([lbl(db)], [AMS], [], { enabled: false })
    const s = snapshot({
      workloads: [W1, D1],
      labelGroups: [group, sub],
      ruleSets: [ruleSet([r, off]), { ...ruleSet([allow([AMS], [AMS], [])]), enabled: false }],
    })
    expect(computeHostPolicy(s, D1.href).rules.map((x) => x.key)).toEqual([
      `${r.href}#in`,
      `${r.href}#out`,
    ])
  })

  it('applies reject and loopback scopes and refuses an unknown workload', () => {
    const s = snapshot({
      workloads: [D1],
      firewallSettings: {
        firewallCoexistence: [],
        blockedConnectionRejectScopes: [[db.href]],
        loopbackInterfacesInPolicyScopes: [[web.href]],
      },
    })
    const p = computeHostPolicy(s, D1.href)
    expect([p.rejectBlocked, p.loopbackInPolicy]).toEqual([true, false])
    expect(() => computeHostPolicy(s, '/orgs/1/workloads/nope')).toThrow(/not in policy version 1/)
  })
})
