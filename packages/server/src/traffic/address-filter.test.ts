import { describe, expect, it } from 'vitest'
import type { AddressFilter } from './address-filter.js'
import { addressFilter } from './address-filter.js'
import type { ActorContext, FlowWorkload } from './flow-match.js'
import type { Doc } from '../validate.js'
import { parseTrafficQuery } from './query-parse.js'

const L = (n: number) => `/orgs/1/labels/${n}`
const workload = (id: number, labels: number[], managed = true): FlowWorkload => ({
  href: `/orgs/1/workloads/w${id}`,
  name: `w${id}`,
  hostname: `w${id}`,
  managed,
  os_type: 'linux',
  labels: labels.map((l) => ({ href: L(l), key: 'app', value: `v${l}` })),
})
const ctx: ActorContext = {
  workloadByIp: new Map([
    ['198.18.0.1', workload(1, [1])],
    ['198.18.0.2', workload(2, [2])],
    ['198.18.0.3', workload(3, [1, 2], false)],
  ]),
  ipLists: new Map(),
  labelGroups: new Map([['/orgs/1/sec_policy/draft/label_groups/g', new Set([L(2)])]]),
  overrideDenyRules: new Set(),
}
const side = (...groups: Doc[][]) => ({ include: groups, exclude: [] })
const filterOf = (body: Doc) =>
  addressFilter(parseTrafficQuery({ max_results: 10, ...body }, '2026-12-01T00:00:00.000Z'), ctx)
const sets = (f: AddressFilter | undefined) =>
  f && { op: f.op, src: f.src && [...f.src].sort(), dst: f.dst && [...f.dst].sort() }

describe('addressFilter', () => {
  it.each<[string, Doc, ReturnType<typeof sets>]>([
    ['no actors: none', {}, undefined],
    [
      'a source label: its workloads',
      { sources: side([{ label: { href: L(1) } }]) },
      { op: 'and', src: ['198.18.0.1', '198.18.0.3'], dst: null },
    ],
    [
      'both sides',
      {
        sources: side([{ label: { href: L(1) } }]),
        destinations: side([{ workload: { href: '/orgs/1/workloads/w2' } }]),
      },
      { op: 'and', src: ['198.18.0.1', '198.18.0.3'], dst: ['198.18.0.2'] },
    ],
    [
      'a group: the addresses all its actors match',
      { sources: side([{ label: { href: L(1) } }, { label: { href: L(2) } }]) },
      { op: 'and', src: ['198.18.0.3'], dst: null },
    ],
    [
      'groups are a union',
      { sources: side([{ label: { href: L(1) } }], [{ label: { href: L(2) } }]) },
      { op: 'and', src: ['198.18.0.1', '198.18.0.2', '198.18.0.3'], dst: null },
    ],
    [
      'a group of ranges only leaves its side open',
      { sources: side([{ label: { href: L(1) } }], [{ ip_address: { value: '10.0.0.0/8' } }]) },
      undefined,
    ],
    [
      'a label group: its members',
      {
        destinations: side([{ label_group: { href: '/orgs/1/sec_policy/draft/label_groups/g' } }]),
      },
      { op: 'and', src: null, dst: ['198.18.0.2', '198.18.0.3'] },
    ],
    [
      'an unknown label: nothing',
      { destinations: side([{ label: { href: L(9) } }]) },
      { op: 'and', src: null, dst: [] },
    ],
    [
      'managed workloads',
      { sources: side([{ actors: 'ams' }]) },
      { op: 'and', src: ['198.18.0.1', '198.18.0.2'], dst: null },
    ],
    [
      'or: either side',
      {
        sources_destinations_query_op: 'or',
        sources: side([{ label: { href: L(2) } }]),
        destinations: side([{ workload: { href: '/orgs/1/workloads/w1' } }]),
      },
      { op: 'or', src: ['198.18.0.2', '198.18.0.3'], dst: ['198.18.0.1'] },
    ],
    [
      'or with an open side: none',
      {
        sources_destinations_query_op: 'or',
        sources: side([{ label: { href: L(2) } }]),
        destinations: side([{ ip_address: { value: '10.0.0.0/8' } }]),
      },
      undefined,
    ],
  ])('%s', (_, body, want) => {
    expect(sets(filterOf(body))).toEqual(want)
  })
})
