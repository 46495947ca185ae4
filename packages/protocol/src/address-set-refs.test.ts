import fc from 'fast-check'
import type { AddressSet, HostPolicy, HostRule } from '@palisade/model'
import { addressSetOf } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import {
  addressSetId,
  applySetDelta,
  HeldSets,
  INLINE_SET_MAX,
  resolveSetRefs,
  setDelta,
  SetReferencer,
  setRefsOf,
} from './address-set-refs.js'
import { checkSetsRequest } from './agent-messages.js'
import { checkPolicyReply, checkSetsReply } from './server-messages.js'

/** `n` addresses from 198.18.0.0/15, every `step`-th, so that none merge into a wider CIDR. */
const spread = (n: number, from = 0, step = 2): AddressSet =>
  addressSetOf(
    Array.from({ length: n }, (_, i) => {
      const k = from + i * step
      return { from: `198.18.${Math.floor(k / 256)}.${k % 256}` }
    }),
  )

const rule = (key: string, peers: HostRule['peers']): HostRule => ({
  key,
  ruleHref: `/orgs/1/sec_policy/active/rule_sets/1/sec_rules/${key}`,
  action: 'allow',
  direction: 'inbound',
  peers,
  services: [{ proto: 6, port: 443 }],
})

const policyWith = (rules: HostRule[], version = 2): HostPolicy => ({
  version,
  workload: { href: '/orgs/1/workloads/w1', name: 'db-1' },
  enforcementMode: 'full',
  visibilityLevel: 'flow_summary',
  mode: { mode: 'exclusive', applied: true, reason: { kind: 'no_match' } },
  rejectBlocked: false,
  loopbackInPolicy: false,
  rules,
})

/** What the agent would get: the server's reply through the agent's checks. */
const overTheWire = <T>(check: (x: unknown) => { ok: boolean; value?: T }, x: unknown): T => {
  const r = check(JSON.parse(JSON.stringify(x)))
  expect(r.ok, JSON.stringify(r)).toBe(true)
  return r.value as T
}

describe('naming large sets by content id', () => {
  it('writes small sets out and names large ones, one id per content', () => {
    const web = spread(INLINE_SET_MAX + 1)
    const small = spread(INLINE_SET_MAX, 1000)
    const { doc, sets } = new SetReferencer().docOf(
      policyWith([
        rule('a', web),
        rule('b', small),
        rule('c', 'any'),
        rule('d', spread(INLINE_SET_MAX + 1)),
      ]),
    )
    const id = addressSetId(web)
    expect(doc.rules.map((r) => r.peers)).toEqual([{ set: id }, small, 'any', { set: id }])
    expect([...sets.keys()]).toEqual([id])
    expect(setRefsOf(doc)).toEqual([id])
    expect(id).toMatch(/^[0-9a-f]{32}$/)
    expect(addressSetId(spread(INLINE_SET_MAX + 1, 1))).not.toBe(id)
  })

  it('resolves a policy back to what was computed, and names a set it lacks', () => {
    const policy = policyWith([
      rule('a', spread(300)),
      rule('b', spread(200, 700)),
      rule('c', 'any'),
    ])
    const { doc, sets } = new SetReferencer().docOf(policy)
    expect(resolveSetRefs(doc, sets)).toEqual(policy)
    const [first] = setRefsOf(doc)
    sets.delete(first ?? '')
    expect(() => resolveSetRefs(doc, sets)).toThrow(`rule a names set ${first}, which is not held`)
  })
})

describe('deltas', () => {
  /** Sets in the model's form, from ranges and single addresses that overlap and touch. */
  const setArb = fc
    .array(
      fc.record({ at: fc.integer({ min: 0, max: 600 }), len: fc.integer({ min: 0, max: 40 }) }),
      { maxLength: 60 },
    )
    .map((xs) =>
      addressSetOf(
        xs.map(({ at, len }) => ({
          from: `198.18.${Math.floor(at / 256)}.${at % 256}`,
          ...(len > 0 && {
            to: `198.18.${Math.floor((at + len) / 256)}.${(at + len) % 256}`,
          }),
        })),
      ),
    )

  it('rebuilds the target set from any base, entries merged or split differently', () => {
    fc.assert(
      fc.property(setArb, setArb, (from, to) => {
        const d = setDelta(from, to)
        const built = applySetDelta(from, d)
        expect(built).toEqual(to)
        expect(addressSetId(built)).toBe(addressSetId(to))
      }),
      { numRuns: 500 },
    )
  })

  it('sends only what changed: one address added to 20,000 is one entry', () => {
    const before = spread(20_000)
    const after = spread(20_001)
    const d = setDelta(before, after)
    expect(d).toEqual({ add: { v4: ['198.18.156.64/32'], v6: [] }, remove: { v4: [], v6: [] } })
    expect(applySetDelta(before, d)).toEqual(after)
  })
})

describe('the agent resolving its policy (HeldSets)', () => {
  const web1 = spread(500)
  const web2 = spread(501)
  const server = new SetReferencer()

  it('asks for each set once, whole at first, then as a change from the one its rule had', () => {
    const held = new HeldSets()
    const first = server.docOf(policyWith([rule('a', web1), rule('b', web1)]))
    const id1 = addressSetId(web1)
    expect(held.wanted(first.doc)).toEqual([{ id: id1 }])
    const reply = overTheWire(checkSetsReply, { sets: [{ id: id1, set: web1 }], gone: [] })
    expect(held.resolve(first.doc, reply.sets)).toEqual(
      policyWith([rule('a', web1), rule('b', web1)]),
    )
    // Nothing new: nothing to ask for.
    expect(held.wanted(first.doc)).toEqual([])
    const second = server.docOf(policyWith([rule('a', web2), rule('b', web1)], 3))
    const id2 = addressSetId(web2)
    expect(held.wanted(second.doc)).toEqual([{ id: id2, from: id1 }])
    const d = setDelta(web1, web2)
    const delta = overTheWire(checkSetsReply, {
      sets: [{ id: id2, from: id1, add: d.add, remove: d.remove }],
      gone: [],
    })
    expect(held.resolve(second.doc, delta.sets)).toEqual(
      policyWith([rule('a', web2), rule('b', web1)], 3),
    )
  })

  it('refuses a set that is not the one its id names, and a delta from a set it does not hold', () => {
    const held = new HeldSets()
    const { doc } = server.docOf(policyWith([rule('a', web1)]))
    const id1 = addressSetId(web1)
    const forged = { v4: [...web1.v4, '203.0.113.9/32'], v6: [] }
    expect(() => held.resolve(doc, [{ id: id1, set: forged }])).toThrow(
      `the server's set ${id1} is not the set that id names`,
    )
    const other = addressSetId(web2)
    expect(() =>
      held.resolve(doc, [{ id: id1, from: other, add: web1, remove: { v4: [], v6: [] } }]),
    ).toThrow(`a change from set ${other}, which this agent does not hold`)
    // Nothing was held from the refused replies: the set is still wanted whole.
    expect(held.wanted(doc)).toEqual([{ id: id1 }])
  })
})

describe('the messages, as each end checks them', () => {
  const id = addressSetId(spread(100))

  it('takes shared sets by id in a policy reply, and nothing else in their place', () => {
    const { doc } = new SetReferencer().docOf(policyWith([rule('a', spread(100))]))
    const ok = checkPolicyReply(JSON.parse(JSON.stringify({ hash: 'ab', policy: doc })))
    expect(ok).toEqual({ ok: true, value: { hash: 'ab', policy: doc } })
    const withPeers = (peers: unknown) =>
      checkPolicyReply({ hash: 'ab', policy: { ...doc, rules: [{ ...doc.rules[0], peers }] } })
    const paths = (r: ReturnType<typeof checkPolicyReply>) =>
      r.ok ? [] : r.issues.map((i) => i.path)
    expect(paths(withPeers({ set: id.toUpperCase() }))).toEqual(['$.policy.rules[0].peers.set'])
    expect(paths(withPeers({ set: '../../etc' }))).toEqual(['$.policy.rules[0].peers.set'])
    expect(paths(withPeers({ set: id, v4: [] }))).toEqual(['$.policy.rules[0].peers.v4'])
  })

  it('refuses a malformed sets reply part by part', () => {
    const r = checkSetsReply({
      sets: [
        { id, set: { v4: ['198.18.0.1/32; flush ruleset'], v6: [] } },
        { id: 'x', set: { v4: [], v6: [] } },
        { id, from: id, add: { v4: [] }, remove: { v4: [], v6: [] } },
        { id, set: { v4: [], v6: [] }, extra: 1 },
      ],
      gone: ['nope'],
    })
    expect(r.ok ? [] : r.issues.map((i) => i.path)).toEqual([
      '$.sets[0].set.v4[0]',
      '$.sets[1].id',
      '$.sets[2].add.v6',
      '$.sets[3].extra',
      '$.gone[0]',
    ])
  })

  it('takes a sets request of ids only', () => {
    expect(checkSetsRequest({ want: [{ id }, { id, from: id }] })).toEqual({
      ok: true,
      value: { want: [{ id }, { id, from: id }] },
    })
    const r = checkSetsRequest({ want: [{ id: 1 }, { id, from: 'a' }, { id, as: 'x' }] })
    expect(r.ok ? [] : r.issues.map((i) => i.path)).toEqual([
      '$.want[0].id',
      '$.want[1].from',
      '$.want[2].as',
    ])
    expect(checkSetsRequest({}).ok).toBe(false)
  })
})
