import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { FirewallSettings } from './firewall-settings.js'
import type { PolicySnapshot } from './host-policy.js'
import { computeHostPolicy } from './host-policy.js'
import type { WorkloadChange } from './host-policy-affected.js'
import { hostsAffected, policyAffected } from './host-policy-affected.js'
import { change, estate, snapshotOf } from './host-policy-estates.fixture.js'
import type { Label, LabelGroup } from './labels.js'
import type { IpList, Rule, ScopeRef } from './rules.js'
import type { Service } from './service.js'
import { allow, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const prod = label(3, 'env', 'prod')
const dev = label(4, 'env', 'dev')
const loc = label(5, 'loc', 'a')

const W = (n: string, l: Label[]) => workload(n, `198.18.0.${n.length}`, l)

/** A host's policy as an agent enforces it (the version alone changes nothing it does). */
const policyOf = (s: PolicySnapshot, href: string) =>
  JSON.stringify({ ...computeHostPolicy(s, href), version: undefined })

describe('hosts a policy change reaches', () => {
  const W1 = W('web1', [web, prod])
  const W2 = W('web02', [web, dev])
  const D1 = W('db1xx', [db, prod])
  const D2 = W('db2xxx', [db, dev])
  const base = snapshot({
    labels: [web, db, prod, dev, loc],
    workloads: [W1, W2, D1, D2],
  })
  const hrefs = (x: Set<string> | 'all') => (x === 'all' ? x : [...x].sort())
  const rs = (rules: Rule[], scopes: ScopeRef[][] = []) => ({ ...ruleSet(rules, [], scopes) })
  const r1 = allow([lbl(db)], [lbl(web)], [{ proto: 6, port: 5432 }])

  it('a changed rule reaches its providers and consumers in its scope, and no one else', () => {
    const before = { ...base, ruleSets: [rs([r1], [[{ label: prod.href }]])] }
    const after = {
      ...before,
      ruleSets: [rs([{ ...r1, services: [{ proto: 6, port: 5433 }] }], [[{ label: prod.href }]])],
    }
    expect(hrefs(policyAffected(before, after))).toEqual([D1.href, W1.href].sort())
  })

  it('a changed label group reaches the hosts of the rules that name it, or its parents', () => {
    const g = (labels: string[]): LabelGroup => ({
      href: '/orgs/1/sec_policy/draft/label_groups/g',
      key: 'env',
      name: 'g',
      labels,
      subGroups: [],
    })
    const top: LabelGroup = { ...g([]), href: '/orgs/1/label_groups/top', subGroups: [g([]).href] }
    const r = allow([lbl(db)], [{ kind: 'label_group', href: top.href }], [])
    const other = allow([lbl(web)], [lbl(web)], [])
    const before = { ...base, labelGroups: [g([prod.href]), top], ruleSets: [rs([r, other])] }
    const after = { ...before, labelGroups: [g([prod.href, dev.href]), top] }
    // every host the rule reaches: web2 becomes a consumer, and each db host gains it as a peer
    expect(hrefs(policyAffected(before, after))).toEqual(
      [D1.href, D2.href, W1.href, W2.href].sort(),
    )
    const narrow = { ...before, ruleSets: [rs([r, other], [[{ label: prod.href }]])] }
    const narrowAfter = { ...narrow, labelGroups: after.labelGroups }
    expect(hrefs(policyAffected(narrow, narrowAfter))).toEqual([D1.href, W1.href].sort())
  })

  it('an IP list or a service reaches only the rules that use it', () => {
    const list = (from: string): IpList => ({
      href: '/orgs/1/ip_lists/1',
      name: 'l',
      ranges: [{ from }],
    })
    const svc = (port: number): Service => ({
      href: '/orgs/1/services/1',
      name: 's',
      ports: [{ proto: 6, port }],
    })
    const viaList = allow([lbl(db)], [{ kind: 'ip_list', href: list('').href }], [])
    const viaService = allow([lbl(web)], [lbl(web)], [{ href: svc(1).href }])
    const before = {
      ...base,
      ipLists: [list('10.0.0.0/8')],
      services: [svc(80)],
      ruleSets: [rs([viaList, viaService])],
    }
    expect(hrefs(policyAffected(before, { ...before, ipLists: [list('10.1.0.0/16')] }))).toEqual(
      [D1.href, D2.href].sort(),
    )
    expect(hrefs(policyAffected(before, { ...before, services: [svc(443)] }))).toEqual(
      [W1.href, W2.href].sort(),
    )
  })

  it('firewall settings reach the hosts whose mode or settings change', () => {
    const fs = (scope: string[]): FirewallSettings => ({
      firewallCoexistence: [{ scope, illumioPrimary: true }],
      blockedConnectionRejectScopes: [],
      loopbackInterfacesInPolicyScopes: [],
    })
    const before = { ...base, firewallSettings: fs([web.href, prod.href]) }
    const after = { ...base, firewallSettings: fs([web.href]) }
    expect(hrefs(policyAffected(before, after))).toEqual([W2.href])
  })

  it('a label carried by a workload that changes type reaches every host', () => {
    const moved = { ...loc, key: 'env' }
    const before = { ...base, workloads: [...base.workloads, W('locx', [loc])] }
    expect(policyAffected(before, { ...before, labels: [web, db, prod, dev, moved] })).toBe('all')
    expect(hrefs(policyAffected(base, { ...base, labels: [web, db, prod, dev, moved] }))).toEqual(
      [],
    )
  })
})

/**
 * Generated estates (labels, groups, lists, services, virtual services and bindings, two rule
 * sets, firewall settings, six hosts) and sequences of changes to any of them; after each change
 * every host outside the affected set must compute the policy it had. The hosts a change reaches
 * must also be fewer than all of them often enough that the answer is worth having.
 */
describe('hosts a change reaches (property)', () => {
  it('leaves alone only hosts whose policy stays the same', () => {
    let steps = 0
    let narrower = 0
    fc.assert(
      fc.property(estate, fc.array(change, { minLength: 1, maxLength: 6 }), (first, changes) => {
        let e = first
        let s1 = snapshotOf(e, 1)
        for (const [n, apply] of changes.entries()) {
          e = apply(e)
          const s2 = snapshotOf(e, n + 2)
          const was = new Map(s1.workloads.map((w) => [w.href, w]))
          const is = new Map(s2.workloads.map((w) => [w.href, w]))
          const moved: WorkloadChange[] = [...new Set([...was.keys(), ...is.keys()])]
            .map((h) => ({ before: was.get(h), after: is.get(h) }))
            .filter((c) => JSON.stringify(c.before) !== JSON.stringify(c.after))
          const affected = hostsAffected(s1, s2, moved)
          steps++
          if (affected !== 'all' && affected.size < s2.workloads.length) narrower++
          for (const w of s2.workloads) {
            if (affected === 'all' || affected.has(w.href)) continue
            expect(was.has(w.href), `${w.href} is new, and left out`).toBe(true)
            expect(policyOf(s2, w.href), `${w.href} changed, and was left out`).toBe(
              policyOf(s1, w.href),
            )
          }
          s1 = s2
        }
      }),
      { numRuns: 1500 },
    )
    // most single changes reach some hosts only: the set is not everything in disguise
    expect(narrower / steps).toBeGreaterThan(0.5)
  })
})
