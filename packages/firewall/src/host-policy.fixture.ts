import type { Failsafe, HostPolicy, HostRule } from '@palisade/model'
import { DEFAULT_FAILSAFE, mergeCidrs } from '@palisade/model'
import fc from 'fast-check'

/** A hand-written policy touching every kind of rule, peer and service the compiler handles. */
export const SAMPLE_POLICY: HostPolicy = {
  version: 7,
  workload: { href: '/orgs/1/workloads/db1', name: 'db1' },
  enforcementMode: 'full',
  visibilityLevel: 'flow_summary',
  mode: { mode: 'coexistence_primary', applied: true, reason: { kind: 'scope', items: [0] } },
  rejectBlocked: false,
  loopbackInPolicy: false,
  rules: [
    {
      key: '/r/1#in',
      ruleHref: '/r/1',
      action: 'override_deny',
      direction: 'inbound',
      peers: { v4: ['198.19.66.0/24'], v6: [] },
      services: [{ proto: 6, port: 5432 }],
    },
    {
      key: '/r/2#in',
      ruleHref: '/r/2',
      action: 'allow',
      direction: 'inbound',
      peers: { v4: ['198.18.0.11/32', '198.18.0.12/31'], v6: ['fd00:198:18::11/128'] },
      services: [
        { proto: 6, port: 5432 },
        { proto: 6, port: 6000, toPort: 6010 },
        { proto: 17, port: 53 },
      ],
    },
    {
      key: '/r/3#in',
      ruleHref: '/r/3',
      action: 'allow',
      direction: 'inbound',
      peers: 'any',
      services: [
        { proto: 1, icmpType: 8 },
        { proto: 58, icmpType: 128, icmpCode: 0 },
        { proto: 47 },
      ],
    },
    {
      key: '/r/4#out',
      ruleHref: '/r/4',
      action: 'allow',
      direction: 'outbound',
      peers: { v4: ['198.19.0.0/16'], v6: ['2001:db8::/32'] },
      services: [{ proto: -1 }],
    },
    {
      key: '/r/5#in',
      ruleHref: '/r/5',
      action: 'deny',
      direction: 'inbound',
      peers: { v4: ['0.0.0.0/0'], v6: [] },
      services: [{ proto: 17, port: 1000, toPort: 2000 }],
    },
  ],
}

export const SAMPLE_FAILSAFE: Failsafe = {
  ...DEFAULT_FAILSAFE,
  servers: [{ address: '198.18.0.1', port: 8443 }],
}

const cidr4 = fc
  .tuple(
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 20, max: 32 }),
  )
  .map(([a, b, len]) => {
    const n = ((198 << 24) | (19 << 16) | (a << 8) | b) >>> 0
    const masked = len === 32 ? n : (n & ~((1 << (32 - len)) - 1)) >>> 0
    return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${len}`
  })
const service = fc.oneof(
  fc.record({ proto: fc.constantFrom(6, 17), port: fc.integer({ min: 1, max: 60000 }) }),
  fc.integer({ min: 1, max: 60000 }).chain((p) =>
    fc.record({
      proto: fc.constantFrom(6, 17),
      port: fc.constant(p),
      toPort: fc.integer({ min: p + 1, max: 65535 }),
    }),
  ),
  fc.record({ proto: fc.constant(1), icmpType: fc.constantFrom(0, 3, 8, 11) }),
  fc.record({ proto: fc.constant(58), icmpType: fc.constantFrom(1, 128, 129) }),
  fc.constant({ proto: 47 }),
  fc.constant({ proto: -1 }),
)

/** Generated host policies: random rules, peers, services, modes and enforcement states. */
export const arbitraryHostPolicy: fc.Arbitrary<HostPolicy> = fc
  .record({
    enforcementMode: fc.constantFrom('visibility_only', 'selective', 'full'),
    visibilityLevel: fc.constantFrom('flow_off', 'flow_drops', 'flow_summary', 'flow_full_detail'),
    mode: fc.constantFrom('exclusive', 'coexistence_primary', 'coexistence_non_primary'),
    rejectBlocked: fc.boolean(),
    loopbackInPolicy: fc.boolean(),
    rules: fc.array(
      fc.record({
        action: fc.constantFrom('override_deny', 'allow', 'deny'),
        direction: fc.constantFrom('inbound', 'outbound'),
        any: fc.boolean(),
        v4: fc.array(cidr4, { maxLength: 6 }),
        services: fc.array(service, { minLength: 1, maxLength: 3 }),
      }),
      { maxLength: 8 },
    ),
  })
  .map((g) => ({
    version: 1,
    workload: { href: '/w/gen', name: 'gen' },
    enforcementMode: g.enforcementMode,
    visibilityLevel: g.visibilityLevel,
    mode: { mode: g.mode, applied: true, reason: { kind: 'no_match' } },
    rejectBlocked: g.rejectBlocked,
    loopbackInPolicy: g.loopbackInPolicy,
    rules: g.rules.map((r, i): HostRule => ({
      key: `/r/${i}#${r.direction === 'inbound' ? 'in' : 'out'}`,
      ruleHref: `/r/${i}`,
      action: r.action,
      direction: r.direction,
      // The model normalises peers before they get here; the compiler relies on that.
      peers: r.any ? 'any' : { v4: normalise(r.v4), v6: [] },
      services: r.services,
    })),
  }))

const normalise = (cidrs: string[]) => mergeCidrs(4, cidrs)
