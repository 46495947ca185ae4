import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { WorkloadChange } from './host-policy-affected.js'
import { computeHostPolicy } from './host-policy.js'
import { workloadsAffected } from './host-policy-affected.js'
import { hostOf } from './host-policy-estates.fixture.js'
import type { Actor, DenyRule, VirtualService } from './rules.js'
import { RESOLVE_AS, RULE_SIDES } from './rules.js'
import { AMS, allow, deny, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'
import type { Workload } from './workload.js'

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
      labels: [web, db, prod, dev],
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
        blockedConnectionRejectScopes: [[{ label: db.href }]],
        loopbackInterfacesInPolicyScopes: [[{ label: web.href }]],
      },
    })
    const p = computeHostPolicy(s, D1.href)
    expect([p.rejectBlocked, p.loopbackInPolicy]).toEqual([true, false])
    expect(() => computeHostPolicy(s, '/orgs/1/workloads/nope')).toThrow(/not in policy version 1/)
  })
})

describe('workloads a change of workloads affects', () => {
  const W3 = workload('web3', '198.18.0.13', [web, prod])
  const pg = allow([lbl(db)], [lbl(web)], [{ proto: 6, port: 5432 }])
  const base = snapshot({ workloads: [W1, W2, D1, D2], ruleSets: [ruleSet([pg])] })
  const hrefs = (s: Set<string>) => [...s].sort()
  const cases: [string, Parameters<typeof workloadsAffected>[1], string[]][] = [
    ['a web host added: it and the db hosts', [{ after: W3 }], [D1.href, D2.href, W3.href]],
    ['a web host removed: the db hosts', [{ before: W2 }], [D1.href, D2.href]],
    [
      'a db host re-addressed: it and the web hosts',
      [{ before: D1, after: { ...D1, interfaces: [{ name: 'eth0', address: '198.18.0.99' }] } }],
      [D1.href, W1.href, W2.href],
    ],
    [
      'enforcement changed: only itself (no peer set moves)',
      [{ before: W1, after: { ...W1, enforcementMode: 'selective' } }],
      [W1.href],
    ],
    [
      'a web host turned db: both sides',
      [{ before: W1, after: { ...W1, labels: [db.href, prod.href] } }],
      [D1.href, D2.href, W1.href, W2.href],
    ],
    [
      'a host no rule names: only itself',
      [{ after: workload('x', '198.18.0.50', [prod]) }],
      ['/orgs/1/workloads/x'],
    ],
  ]
  it.each(cases)('%s', (_name, changes, expected) => {
    const after = snapshot({
      ...base,
      workloads: [
        ...base.workloads.filter((w) => !changes.some((c) => c.before?.href === w.href)),
        ...changes.flatMap((c) => (c.after ? [c.after] : [])),
      ],
    })
    expect(hrefs(workloadsAffected(after, changes))).toEqual(expected.sort())
  })

  it('a scoped rule reaches only hosts in its scope; unscoped consumers reach further', () => {
    const scoped = allow([lbl(db)], [lbl(web)], [{ proto: 6, port: 1 }])
    const wide = allow([lbl(db)], [lbl(web)], [{ proto: 6, port: 2 }], { unscopedConsumers: true })
    const devWeb = workload('devweb', '198.18.0.14', [web, dev])
    const inDev = [ruleSet([scoped], [], [[{ label: dev.href }]])]
    const s = snapshot({ workloads: [W1, D1, D2, devWeb], ruleSets: inDev })
    expect(hrefs(workloadsAffected(s, [{ after: devWeb }]))).toEqual([D2.href, devWeb.href])
    expect(hrefs(workloadsAffected(s, [{ before: W1 }])), 'prod web is out of scope').toEqual([])
    const s2 = snapshot({ ...s, ruleSets: [ruleSet([wide], [], [[{ label: dev.href }]])] })
    expect(hrefs(workloadsAffected(s2, [{ before: W1 }]))).toEqual([D2.href])
  })

  // Every host whose policy differs between the two snapshots must be in the affected set.
  it('covers every host whose policy changed (property)', () => {
    const loc = label(5, 'loc', 'a')
    const labels = [web, db, prod, dev, loc]
    const groups = [
      {
        href: '/orgs/1/sec_policy/draft/label_groups/g',
        key: 'role',
        name: 'g',
        labels: [web.href],
        subGroups: [],
      },
      {
        href: '/orgs/1/sec_policy/draft/label_groups/envs',
        key: 'env',
        name: 'envs',
        labels: [prod.href, dev.href],
        subGroups: [],
      },
    ]
    // two virtual services, bound to two hosts (bindings are policy: the same before and after)
    const vs = (id: string, vsLabels: string[]): VirtualService => ({
      href: `/orgs/1/sec_policy/draft/virtual_services/${id}`,
      name: id,
      labels: vsLabels,
      ports: [{ proto: 6, port: 8080 }],
      ipOverrides: [],
      serviceAddresses: [],
    })
    const virtualServices = [vs('v1', [db.href, prod.href]), vs('v2', [web.href])]
    const serviceBindings = [
      {
        href: '/orgs/1/service_bindings/b1',
        virtualService: virtualServices[0]!.href,
        workload: '/orgs/1/workloads/h1',
        portOverrides: [],
      },
      {
        href: '/orgs/1/service_bindings/b2',
        virtualService: virtualServices[1]!.href,
        workload: '/orgs/1/workloads/h2',
        portOverrides: [{ port: 8080, newPort: 9090 }],
      },
    ]
    const exclusion = fc.constantFrom({}, { exclusion: true } as const)
    const actor = fc.oneof(
      fc.tuple(fc.constantFrom(...labels), exclusion).map<Actor>(([l, e]) => ({ ...lbl(l), ...e })),
      fc.constant(AMS),
      fc
        .tuple(fc.constantFrom(...groups), exclusion)
        .map<Actor>(([g, e]) => ({ kind: 'label_group', href: g.href, ...e })),
      fc.integer({ min: 0, max: 5 }).map<Actor>((i) => ({
        kind: 'workload',
        href: `/orgs/1/workloads/h${i}`,
      })),
      fc.constantFrom(...virtualServices).map<Actor>((v) => ({
        kind: 'virtual_service',
        href: v.href,
      })),
    )
    const rule = fc.record({
      providers: fc.array(actor, { minLength: 1, maxLength: 3 }),
      consumers: fc.array(actor, { minLength: 1, maxLength: 3 }),
      deny: fc.boolean(),
      unscopedConsumers: fc.boolean(),
      enabled: fc.boolean(),
      providersResolveAs: fc.subarray([...RESOLVE_AS], { minLength: 1 }),
      useWorkloadSubnets: fc.subarray([...RULE_SIDES]),
    })
    const scope = fc.array(
      fc.oneof(
        fc.tuple(fc.constantFrom(...labels), exclusion).map(([l, e]) => ({ label: l.href, ...e })),
        fc
          .tuple(fc.constantFrom(...groups), exclusion)
          .map(([g, e]) => ({ labelGroup: g.href, ...e })),
      ),
      { maxLength: 3 },
    )
    const host = (i: number) => hostOf(i, labels, 4, [undefined, 24, 30])
    const ids = [0, 1, 2, 3, 4, 5]
    const hosts = fc.tuple(...ids.map(host))
    const present = fc.array(fc.boolean(), { minLength: 6, maxLength: 6 })
    const rarely = <T>(arb: fc.Arbitrary<T>, otherwise: T) =>
      fc.oneof({ weight: 4, arbitrary: fc.constant(otherwise) }, { weight: 1, arbitrary: arb })
    // Two worlds: every host drawn afresh after the change, or a few hosts changed (then the
    // unchanged ones must be left alone exactly when their policy stays the same).
    const independent = fc.tuple(hosts, hosts, present, present)
    const fewChanged = fc
      .tuple(
        hosts,
        // a host drawn afresh, or only its interface's prefix length changed
        fc.tuple(
          ...ids.map((i) =>
            rarely(
              fc.oneof(
                host(i),
                fc.constantFrom(undefined, 28, 31).map((cidrBlock) => ({ cidrBlock })),
              ),
              null,
            ),
          ),
        ),
        present,
        fc.tuple(...ids.map(() => rarely(fc.constant(true), false))),
      )
      .map(
        ([before, changed, inBefore, flips]) =>
          [
            before,
            before.map((b, i): Workload => {
              const c = changed[i]
              if (c === null || c === undefined) return b
              if ('href' in c) return c
              const { cidrBlock: _, ...eth0 } = b.interfaces[0]!
              return {
                ...b,
                interfaces: [{ ...eth0, ...(c.cidrBlock !== undefined && c) }],
              }
            }),
            inBefore,
            inBefore.map((p, i) => (flips[i] ? !p : p)),
          ] as const,
      )
    fc.assert(
      fc.property(
        fc.array(rule, { maxLength: 4 }),
        fc.array(scope, { maxLength: 2 }),
        fc.oneof(independent, fewChanged),
        (rules, scopes, [before, after, inBefore, inAfter]) => {
          const built = rules.map((r) =>
            r.deny
              ? {
                  ...deny(r.providers, r.consumers, []),
                  unscopedConsumers: r.unscopedConsumers,
                  useWorkloadSubnets: r.useWorkloadSubnets,
                }
              : allow(r.providers, r.consumers, [], r),
          )
          const rs = ruleSet(
            built.filter((r) => !('override' in r)),
            built.filter((r): r is DenyRule => 'override' in r),
            scopes,
          )
          const snap = (ws: Workload[]) =>
            snapshot({
              labels,
              labelGroups: groups,
              workloads: ws,
              ruleSets: [rs],
              virtualServices,
              serviceBindings,
            })
          const s1 = snap(before.filter((_, i) => inBefore[i]))
          const s2 = snap(after.filter((_, i) => inAfter[i]))
          const changes = before.flatMap((b, i): WorkloadChange[] => {
            const was = inBefore[i] ? b : undefined
            const is = inAfter[i] ? after[i] : undefined
            return JSON.stringify(was) === JSON.stringify(is) ? [] : [{ before: was, after: is }]
          })
          const affected = workloadsAffected(s2, changes)
          for (const w of s2.workloads) {
            if (!s1.workloads.some((x) => x.href === w.href)) continue
            const same =
              JSON.stringify(computeHostPolicy(s1, w.href)) ===
              JSON.stringify(computeHostPolicy(s2, w.href))
            if (!same) expect(affected.has(w.href), `${w.href} changed`).toBe(true)
          }
          for (const w of s2.workloads)
            if (!s1.workloads.some((x) => x.href === w.href))
              expect(affected.has(w.href), `${w.href} is new`).toBe(true)
        },
      ),
      { numRuns: 4000, seed: 4242 },
    )
  })
})
