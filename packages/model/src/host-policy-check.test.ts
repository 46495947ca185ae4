import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Checked, Issue } from './check.js'
import type { HostPolicy } from './host-policy.js'
import { computeHostPolicy } from './host-policy.js'
import { checkHostPolicy, HOST_POLICY_LIMITS } from './host-policy-check.js'
import type { Interval } from './ip.js'
import { cidrToInterval, intervalsToCidrs } from './ip.js'
import type { LocalPolicyError } from './local-policy.js'
import { hostPolicyFromLocalFile } from './local-policy.js'
import { AMS, allow, deny, label, lbl, ruleSet, snapshot, workload } from './snapshot.fixture.js'

const web = label(1, 'role', 'web')
const db = label(2, 'role', 'db')
const W1 = workload('web1', ['198.18.0.11', '2001:db8::11'], [web])
const D1 = workload('db1', '198.18.0.21', [db])

/** A policy as a server computes it, through JSON as it travels. */
function served(): Record<string, unknown> {
  const s = snapshot({
    workloads: [W1, D1],
    ruleSets: [
      ruleSet(
        [
          allow(
            [lbl(db)],
            [lbl(web)],
            [
              { proto: 6, port: 5432 },
              { proto: 1, icmpType: 8 },
            ],
          ),
        ],
        [deny([AMS], [AMS], [{ proto: 17, port: 1000, toPort: 2000 }], true)],
      ),
    ],
  })
  return JSON.parse(JSON.stringify(computeHostPolicy(s, D1.href))) as Record<string, unknown>
}

const issuesOf = (r: Checked<unknown>): readonly Issue[] => (r.ok ? [] : r.issues)
const pathsOf = (r: Checked<unknown>) => issuesOf(r).map((i) => i.path)
const rule0 = (doc: Record<string, unknown>) => (doc.rules as Record<string, unknown>[])[0] ?? {}

describe('host policy from a server (strict schema)', () => {
  it('accepts a computed policy and gives back an equal one', () => {
    const doc = served()
    const r = checkHostPolicy(doc)
    expect(r).toEqual({ ok: true, value: doc })
    expect((doc.rules as unknown[]).length).toBe(3)
  })

  it('re-parses and re-formats every address, never taking it as sent', () => {
    const doc = served()
    rule0(doc).peers = {
      v4: ['198.18.0.1/24', '198.18.1.0/24', '198.18.0.7'],
      v6: ['2001:DB8:0:0::1/128'],
    }
    const r = checkHostPolicy(doc)
    expect(r.ok && r.value.rules[0]?.peers).toEqual({
      v4: ['198.18.0.0/23'],
      v6: ['2001:db8::1/128'],
    })
  })

  it('refuses each malformed part with its JSON path', () => {
    const cases: [string, (d: Record<string, unknown>) => void, string][] = [
      ['an unknown property', (d) => (d.extra = 1), '$.extra'],
      ['a missing version', (d) => delete d.version, '$.version'],
      ['a negative version', (d) => (d.version = -1), '$.version'],
      ['a fractional version', (d) => (d.version = 1.5), '$.version'],
      ['an unknown enforcement mode', (d) => (d.enforcementMode = 'strict'), '$.enforcementMode'],
      ['an unknown visibility', (d) => (d.visibilityLevel = 'all'), '$.visibilityLevel'],
      ['a mode that is not one', (d) => (d.mode = { mode: 'x' }), '$.mode.mode'],
      ['a string for a flag', (d) => (d.rejectBlocked = 'yes'), '$.rejectBlocked'],
      ['a workload without href', (d) => (d.workload = { name: 'x' }), '$.workload.href'],
      ['rules that are not a list', (d) => (d.rules = {}), '$.rules'],
      ['an unknown action', (d) => (rule0(d).action = 'permit'), '$.rules[0].action'],
      ['an unknown direction', (d) => (rule0(d).direction = 'up'), '$.rules[0].direction'],
      ['a huge key', (d) => (rule0(d).key = 'k'.repeat(2000)), '$.rules[0].key'],
      [
        'an IPv6 address among IPv4 ones',
        (d) => (rule0(d).peers = { v4: ['::1/128'], v6: [] }),
        '$.rules[0].peers.v4[0]',
      ],
      [
        'an address that is not one',
        (d) => (rule0(d).peers = { v4: ['198.18.0.300/32'], v6: [] }),
        '$.rules[0].peers.v4[0]',
      ],
      ['peers as a list of text', (d) => (rule0(d).peers = ['198.18.0.1']), '$.rules[0].peers'],
      [
        'a port out of range',
        (d) => (rule0(d).services = [{ proto: 6, port: 70_000 }]),
        '$.rules[0].services[0]',
      ],
      [
        'a port as text',
        (d) => (rule0(d).services = [{ proto: 6, port: '80' }]),
        '$.rules[0].services[0]',
      ],
      [
        'an ICMP type out of range',
        (d) => (rule0(d).services = [{ proto: 1, icmpType: 300 }]),
        '$.rules[0].services[0]',
      ],
      [
        'a service in the file form',
        (d) => (rule0(d).services = [{ proto: 6, port: 1, to_port: 2 }]),
        '$.rules[0].services[0].to_port',
      ],
      ['no services', (d) => (rule0(d).services = []), '$.rules[0].services'],
      ['two rules with one key', (d) => (d.rules = [rule0(d), rule0(d)]), '$.rules[1].key'],
    ]
    for (const [what, spoil, path] of cases) {
      const doc = served()
      spoil(doc)
      const r = checkHostPolicy(doc)
      expect(r.ok, what).toBe(false)
      expect(pathsOf(r), what).toContain(path)
    }
    expect(pathsOf(checkHostPolicy('policy'))).toEqual(['$'])
  })

  it(`bounds the policy: at most ${HOST_POLICY_LIMITS.rules} rules, ${HOST_POLICY_LIMITS.peersPerRule} peers a rule`, () => {
    const doc = served()
    const many = Array.from({ length: HOST_POLICY_LIMITS.rules + 1 }, (_, i) => ({
      ...rule0(doc),
      key: `k${i}`,
    }))
    expect(pathsOf(checkHostPolicy({ ...doc, rules: many }))).toEqual(['$.rules'])
    const wide = {
      v4: new Array<string>(HOST_POLICY_LIMITS.peersPerRule + 1).fill('10.0.0.1'),
      v6: [],
    }
    expect(pathsOf(checkHostPolicy({ ...doc, rules: [{ ...rule0(doc), peers: wide }] }))).toEqual([
      '$.rules[0].peers.v4',
    ])
  })

  it('passes a policy with 100,000 peers', () => {
    const doc = served()
    // every other address: nothing merges, 100,000 CIDRs go through as they are
    const v4 = Array.from(
      { length: 100_000 },
      (_, i) => `10.${i >> 15}.${(i >> 7) & 255}.${(i & 127) * 2}/32`,
    )
    const r = checkHostPolicy({ ...doc, rules: [{ ...rule0(doc), peers: { v4, v6: [] } }] })
    expect(r.ok && r.value.rules[0]?.peers).toEqual({ v4, v6: [] })
  })
})

describe('peers as the checker takes them', () => {
  /** What the checker made of one family's list, one entry at a time (the way errors take). */
  function oneByOne(list: unknown[], fam: 4 | 6): string[] | undefined {
    const intervals: Interval[] = []
    for (const e of list) {
      if (typeof e !== 'string' || e.length > HOST_POLICY_LIMITS.peer) return undefined
      try {
        const p = cidrToInterval(e)
        if (p.family !== fam) return undefined
        intervals.push(p.interval)
      } catch {
        return undefined
      }
    }
    return intervalsToCidrs(fam, intervals)
  }
  const v4 = fc.oneof(
    fc
      .tuple(
        fc.integer({ min: 0, max: 40 }),
        fc.constantFrom('', '/32', '/31', '/30', '/24', '/032', '/33'),
      )
      .map(([n, len]) => `198.18.0.${n}${len}`),
    fc.constantFrom('198.18.0.300/32', '0.0.0.0/0', '198.18.00.1', ' 198.18.0.1', '198.18.0'),
  )
  const v6 = fc
    .tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom('', '/128', '/127', '/64', '/129'))
    .map(([n, len]) => `2001:DB8::${n.toString(16)}${len}`)
  const junk = fc.constantFrom('::ffff:1.2.3.4', 'x', '', 7, null)
  /** Mostly entries of the family, now and then one of the other or none at all. */
  const listOf = (own: fc.Arbitrary<string>, other: fc.Arbitrary<string>) =>
    fc.array(
      fc.oneof(
        { arbitrary: own, weight: 12 },
        { arbitrary: other, weight: 1 },
        { arbitrary: junk, weight: 1 },
      ),
      { maxLength: 10 },
    )

  it('normalises each list as parsing its entries one by one would, or refuses it (property)', () => {
    const doc = served()
    fc.assert(
      fc.property(listOf(v4, v6), listOf(v6, v4), (a, b) => {
        const r = checkHostPolicy({ ...doc, rules: [{ ...rule0(doc), peers: { v4: a, v6: b } }] })
        const want4 = oneByOne(a, 4)
        const want6 = oneByOne(b, 6)
        const ok = want4 !== undefined && want6 !== undefined
        expect(r.ok).toBe(ok)
        if (r.ok) expect(r.value.rules[0]?.peers).toEqual({ v4: want4, v6: want6 })
      }),
      { numRuns: 500 },
    )
  })
})

describe('one schema for a server policy and a policy file', () => {
  const WIRE_NAMES: Record<string, string> = {
    to_port: 'toPort',
    icmp_type: 'icmpType',
    icmp_code: 'icmpCode',
  }
  /** What the file form and the served form say of the same bad service port (in file names). */
  function both(sp: Record<string, unknown>): [string[], string[]] {
    let file: string[] = []
    try {
      hostPolicyFromLocalFile({
        rules: [{ action: 'allow', direction: 'inbound', peers: 'any', services: [sp] }],
      })
    } catch (e) {
      file = (e as LocalPolicyError).issues.map((i) => `${i.path}: ${i.message}`)
    }
    const doc = served()
    rule0(doc).services = [
      Object.fromEntries(Object.entries(sp).map(([k, v]) => [WIRE_NAMES[k] ?? k, v])),
    ]
    const wire = issuesOf(checkHostPolicy(doc)).map((i) =>
      Object.entries(WIRE_NAMES).reduce(
        (m, [f, w]) => m.replaceAll(w, f),
        `${i.path}: ${i.message}`,
      ),
    )
    return [file, wire]
  }

  it('says the same of the same bad service port', () => {
    for (const sp of [
      { proto: 6, port: 70_000 },
      { proto: 300 },
      { proto: 17, port: 10, to_port: 5 },
      { proto: 6, port: 1.5 },
      { proto: 1, icmp_type: 256 },
      { proto: 6, icmp_code: 1 },
      { port: 80 },
    ]) {
      const [file, wire] = both(sp)
      expect(file.length, JSON.stringify(sp)).toBeGreaterThan(0)
      expect(file, JSON.stringify(sp)).toEqual(wire)
    }
  })

  it('refuses unknown properties in the file too', () => {
    expect(() => hostPolicyFromLocalFile({ enforcment_mode: 'full' })).toThrow(
      /\$\.enforcment_mode: unknown property/,
    )
    expect(() =>
      hostPolicyFromLocalFile({
        rules: [{ action: 'allow', direction: 'inbound', peers: 'any', services: [], note: 1 }],
      }),
    ).toThrow(/\$\.rules\[0\]\.note: unknown property/)
  })

  it('gives the file form and the served form of one policy the same rules', () => {
    const file = hostPolicyFromLocalFile({
      rules: [
        {
          action: 'allow',
          direction: 'inbound',
          peers: ['198.18.0.1-198.18.0.3'],
          services: [{ proto: 6, port: 8000, to_port: 8010 }],
        },
      ],
    })
    const r = checkHostPolicy(JSON.parse(JSON.stringify(file)) as unknown)
    expect(r).toEqual({ ok: true, value: file } satisfies Checked<HostPolicy>)
  })
})
