import { describe, expect, it } from 'vitest'
import type { Flow } from './map-layout.js'
import { buildMap, flowSelected, OUTSIDE } from './map-layout.js'

const label = (key: string, value: string) => ({ href: `/l/${key}/${value}`, key, value })
const wl = (name: string, app: string) => ({
  href: `/w/${name}`,
  name,
  labels: [label('app', app), label('env', 'prod')],
})
const flow = (src: Flow['src'], dst: Flow['dst'], port: number, decision: string): Flow => ({
  src,
  dst,
  service: { proto: 6, port },
  num_connections: 2,
  policy_decision: decision,
  flow_direction: 'inbound',
  timestamp_range: { first_detected: '', last_detected: '' },
  dropped_downstream: false,
  reports: { source: null, destination: { policy_decision: decision } },
})
const web = { ip: '10.0.0.1', workload: wl('web', 'shop') }
const db = { ip: '10.0.0.2', workload: wl('db', 'shop') }
const crm = { ip: '10.0.0.3', workload: wl('crm', 'crm') }
const out = { ip: '192.0.2.9' }
const flows = [
  flow(web, db, 5432, 'allowed'),
  flow(web, db, 5432, 'allowed'),
  flow(web, db, 6379, 'blocked'),
  flow(out, web, 443, 'potentially_blocked'),
  flow(crm, db, 5432, 'allowed'),
]

describe('the traffic map', () => {
  it('has one edge per pair, with every port, the worst decision and the sum of connections', () => {
    const m = buildMap(flows, 'workloads', 1000)
    const e = m.edges.find((x) => x.from === '/w/web' && x.to === '/w/db')
    expect(e).toMatchObject({
      ports: ['tcp/5432', 'tcp/6379'],
      decision: 'blocked',
      connections: 6,
      flows: 3,
    })
    expect(m.edges).toHaveLength(3)
    expect(m.groups.map((g) => g.name)).toEqual([
      'crm | prod',
      'shop | prod',
      'Outside: addresses of no workload',
    ])
  })

  it('folds workloads into groups, keeping their labels for a rule', () => {
    const m = buildMap(flows, 'groups', 1000)
    expect(m.nodes.size).toBe(3)
    const shop = m.groups.find((g) => g.name === 'shop | prod')
    expect(shop?.labels.map((l) => l.value)).toEqual(['shop', 'prod'])
    expect(m.edges.map((e) => [e.from === OUTSIDE, e.to]).length).toBe(3)
  })

  it('lays every node inside its group, and a ring member names itself outside the ring', () => {
    for (const width of [600, 1024, 1600]) {
      const m = buildMap(flows, 'workloads', width)
      for (const g of m.groups)
        for (const k of g.members) {
          const n = m.nodes.get(k)
          if (!n) throw new Error(k)
          expect(n.x).toBeGreaterThanOrEqual(g.x)
          expect(n.x).toBeLessThanOrEqual(g.x + g.w)
          expect(n.y).toBeGreaterThanOrEqual(g.y)
          expect(n.y).toBeLessThanOrEqual(g.y + g.h)
        }
      for (const g of m.groups) expect(g.x + g.w).toBeLessThanOrEqual(width)
    }
  })

  it('selects the flows of a node, a group or an edge', () => {
    const at = (s: Parameters<typeof flowSelected>[1], level: 'groups' | 'workloads') =>
      flows.filter((f) => flowSelected(f, s, level)).length
    expect(at({ kind: 'node', key: '/w/db' }, 'workloads')).toBe(4)
    expect(at({ kind: 'edge', from: '/w/web', to: '/w/db' }, 'workloads')).toBe(3)
    const shop = buildMap(flows, 'groups', 1000).groups.find((g) => g.name === 'shop | prod')
    expect(at({ kind: 'group', key: shop?.key ?? '' }, 'groups')).toBe(5)
    expect(at({ kind: 'edge', from: OUTSIDE, to: shop?.key ?? '' }, 'groups')).toBe(1)
  })
})
