import { describe, expect, it } from 'vitest'
import type { WorkloadChange } from './host-policy-affected.js'
import { computeHostPolicy } from './host-policy.js'
import { workloadsAffected } from './host-policy-affected.js'
import type { Actor, ServiceBinding, VirtualService } from './rules.js'
import { allow, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const api = label(3, 'role', 'api')
const prod = label(4, 'env', 'prod')
const dev = label(5, 'env', 'dev')
const labels = [web, db, api, prod, dev]
const W = workload('web', '198.18.0.11', [web, prod])
const H1 = workload('h1', ['198.18.0.21', 'fd00::21'], [db, prod])
const H2 = workload('h2', '198.18.0.22', [db, prod])
const vs = (id: string, over: Partial<VirtualService> = {}): VirtualService => ({
  href: `/orgs/1/sec_policy/draft/virtual_services/${id}`,
  name: id,
  labels: [api.href, prod.href],
  ports: [{ proto: 6, port: 8080 }],
  ipOverrides: [],
  serviceAddresses: [],
  ...over,
})
const bind = (
  v: VirtualService,
  w: { href: string },
  portOverrides: ServiceBinding['portOverrides'] = [],
): ServiceBinding => ({
  href: `/orgs/1/service_bindings/${v.name}-${w.href.split('/').pop()}`,
  virtualService: v.href,
  workload: w.href,
  portOverrides,
})
const VS = vs('orders')
const asVs: Actor = { kind: 'virtual_service', href: VS.href }

describe('virtual services as rule providers', () => {
  const r = allow([asVs], [lbl(web)], [])
  const s = snapshot({
    labels,
    workloads: [W, H1, H2],
    virtualServices: [VS],
    serviceBindings: [bind(VS, H1), bind(VS, H2, [{ port: 8080, proto: 6, newPort: 9090 }])],
    ruleSets: [ruleSet([r])],
  })

  it('the bound workloads accept the consumers on the service ports, after their overrides', () => {
    expect(computeHostPolicy(s, H1.href).rules).toEqual([
      {
        key: `${r.href}#in@${VS.href}`,
        ruleHref: r.href,
        action: 'allow',
        direction: 'inbound',
        peers: { v4: ['198.18.0.11/32'], v6: [] },
        services: [{ proto: 6, port: 8080 }],
      },
    ])
    expect(computeHostPolicy(s, H2.href).rules[0]?.services).toEqual([{ proto: 6, port: 9090 }])
  })

  it('the consumers reach each bound workload on its ports, and no more (no "all services")', () => {
    expect(computeHostPolicy(s, W.href).rules.map((h) => [h.key, h.peers, h.services])).toEqual([
      [
        `${r.href}#out@${VS.href}`,
        { v4: ['198.18.0.21/32'], v6: ['fd00::21/128'] },
        [{ proto: 6, port: 8080 }],
      ],
      [
        `${r.href}#out@/orgs/1/service_bindings/orders-h2`,
        { v4: ['198.18.0.22/32'], v6: [] },
        [{ proto: 6, port: 9090 }],
      ],
    ])
  })

  it('an unbound workload gets nothing, a binding to an unknown workload is ignored', () => {
    const lone = workload('lone', '198.18.0.23', [db, prod])
    const s2 = snapshot({
      ...s,
      workloads: [W, H1, lone],
      serviceBindings: [bind(VS, H1), bind(VS, { href: '/orgs/1/workloads/gone' })],
    })
    expect(computeHostPolicy(s2, lone.href).rules).toEqual([])
    expect(computeHostPolicy(s2, W.href).rules.map((h) => h.peers)).toEqual([
      { v4: ['198.18.0.21/32'], v6: ['fd00::21/128'] },
    ])
  })

  it('IP overrides and IP service addresses are reached too; a range keeps its width when moved', () => {
    const ranged = vs('ranged', {
      ports: [{ proto: 6, port: 7000, toPort: 7009 }],
      ipOverrides: ['198.19.0.0/30'],
      serviceAddresses: [{ ip: '198.19.1.1', port: 443 }, { ip: '198.19.1.2' }],
    })
    const rr = allow([{ kind: 'virtual_service', href: ranged.href }], [lbl(web)], [])
    const s3 = snapshot({
      labels,
      workloads: [W, H1],
      virtualServices: [ranged],
      serviceBindings: [bind(ranged, H1, [{ port: 7000, newPort: 17000 }])],
      ruleSets: [ruleSet([rr])],
    })
    expect(computeHostPolicy(s3, H1.href).rules[0]?.services).toEqual([
      { proto: 6, port: 17000, toPort: 17009 },
    ])
    expect(computeHostPolicy(s3, W.href).rules.map((h) => [h.key, h.peers, h.services])).toEqual([
      [
        `${rr.href}#out@${ranged.href}`,
        { v4: ['198.19.0.0/30', '198.19.1.2/32'], v6: [] },
        [{ proto: 6, port: 7000, toPort: 7009 }],
      ],
      [
        `${rr.href}#out@${ranged.href}:443`,
        { v4: ['198.19.1.1/32'], v6: [] },
        [{ proto: 6, port: 443 }],
      ],
      [
        `${rr.href}#out@/orgs/1/service_bindings/ranged-h1`,
        { v4: ['198.18.0.21/32'], v6: ['fd00::21/128'] },
        [{ proto: 6, port: 17000, toPort: 17009 }],
      ],
    ])
  })
})

describe('resolve_labels_as', () => {
  const H3 = workload('h3', '198.18.0.23', [api, prod])
  const base = {
    labels,
    workloads: [W, H1, H3],
    virtualServices: [VS, vs('devapi', { labels: [api.href, dev.href] })],
    serviceBindings: [bind(VS, H1)],
  }
  const keys = (rule: ReturnType<typeof allow>, who: { href: string }) =>
    computeHostPolicy(snapshot({ ...base, ruleSets: [ruleSet([rule])] }), who.href).rules.map(
      (h) => h.key,
    )

  it('providers resolved as virtual services select them by their labels, not workloads', () => {
    const r = allow([lbl(api), lbl(prod)], [lbl(web)], [], {
      providersResolveAs: ['virtual_services'],
    })
    expect(keys(r, H1)).toEqual([`${r.href}#in@${VS.href}`])
    // h3 carries the labels, but is a workload: before, it was let in on every port
    expect(keys(r, H3)).toEqual([])
    expect(keys(r, W)).toEqual([`${r.href}#out@${VS.href}`])
  })

  it('both: the workloads on the rule services, the virtual services on theirs', () => {
    const r = allow([lbl(api), lbl(prod)], [lbl(web)], [{ proto: 6, port: 1 }], {
      providersResolveAs: ['workloads', 'virtual_services'],
    })
    expect(keys(r, H3)).toEqual([`${r.href}#in`])
    expect(keys(r, H1)).toEqual([`${r.href}#in@${VS.href}`])
    expect(keys(r, W)).toEqual([`${r.href}#out`, `${r.href}#out@${VS.href}`])
  })

  it('a scope holds a virtual service by its labels', () => {
    const r = allow([asVs], [lbl(web)], [])
    const s = (scope: string) =>
      snapshot({ ...base, ruleSets: [ruleSet([r], [], [[{ label: scope }]])] })
    expect(computeHostPolicy(s(prod.href), H1.href).rules).toHaveLength(1)
    expect(computeHostPolicy(s(dev.href), H1.href).rules).toEqual([])
  })
})

describe('workloads a change reaches through a virtual service', () => {
  const r = allow([asVs], [lbl(web)], [])
  const s = snapshot({
    labels,
    workloads: [W, H1, H2],
    virtualServices: [VS],
    serviceBindings: [bind(VS, H1)],
    ruleSets: [ruleSet([r])],
  })
  const affected = (changes: WorkloadChange[]) => [...workloadsAffected(s, changes)].sort()

  it('a bound workload re-addressed: its consumers', () => {
    expect(
      affected([
        { before: { ...H1, interfaces: [{ name: 'eth0', address: '198.18.0.99' }] }, after: H1 },
      ]),
    ).toEqual([H1.href, W.href])
  })

  it('a consumer added: the bound workloads', () => {
    expect(affected([{ after: W }])).toEqual([H1.href, W.href])
  })

  it('a bound workload removed: its consumers', () => {
    const gone = snapshot({ ...s, workloads: [W, H2] })
    expect([...workloadsAffected(gone, [{ before: H1 }])]).toEqual([W.href])
  })
})
