import { describe, expect, it } from 'vitest'
import type { Flow } from './decision.js'
import { decide, DEFAULT_FAILSAFE } from './decision.js'
import type { HostPolicy, HostRule } from './host-policy.js'
import type { EnforcementMode } from './workload.js'

const rule = (
  action: HostRule['action'],
  port: number,
  peers: HostRule['peers'] = 'any',
  direction: HostRule['direction'] = 'inbound',
): HostRule => ({
  key: `r${port}-${action}`,
  ruleHref: `/r/${port}`,
  action,
  direction,
  peers,
  services: [{ proto: 6, port }],
})
const policy = (
  enforcementMode: EnforcementMode,
  rules: HostRule[],
  loopbackInPolicy = false,
): HostPolicy => ({
  version: 1,
  workload: { href: '/w', name: 'w' },
  enforcementMode,
  visibilityLevel: 'flow_off',
  mode: { mode: 'exclusive', applied: enforcementMode !== 'idle', reason: { kind: 'no_match' } },
  rejectBlocked: false,
  loopbackInPolicy,
  rules,
})
const RULES = [
  rule('override_deny', 100),
  rule('allow', 100),
  rule('allow', 200),
  rule('deny', 200),
  rule('deny', 300),
  rule('allow', 400, { v4: ['198.18.0.0/24'], v6: [] }),
  rule('allow', 500, 'any', 'outbound'),
]
const flow = (port: number, over: Partial<Flow> = {}): Flow => ({
  direction: 'inbound',
  peer: '198.18.0.9',
  proto: 6,
  port,
  ...over,
})

describe('policy decision', () => {
  // [case, flow, idle, visibility_only, selective, full]
  it.each<[string, Flow, string, string, string, string, string]>([
    [
      'override deny beats allow',
      flow(100),
      'unknown',
      'potentially_blocked',
      'blocked',
      'blocked',
      'override_deny',
    ],
    ['allow beats deny', flow(200), 'unknown', 'allowed', 'allowed', 'allowed', 'allow'],
    ['deny rule', flow(300), 'unknown', 'potentially_blocked', 'blocked', 'blocked', 'deny'],
    ['peer inside allow set', flow(400), 'unknown', 'allowed', 'allowed', 'allowed', 'allow'],
    [
      'peer outside allow set',
      flow(400, { peer: '198.19.0.9' }),
      'unknown',
      'potentially_blocked',
      'potentially_blocked',
      'blocked',
      'default',
    ],
    [
      'no rule: default',
      flow(600),
      'unknown',
      'potentially_blocked',
      'potentially_blocked',
      'blocked',
      'default',
    ],
    [
      'direction matters',
      flow(500),
      'unknown',
      'potentially_blocked',
      'potentially_blocked',
      'blocked',
      'default',
    ],
    [
      'outbound allow',
      flow(500, { direction: 'outbound' }),
      'unknown',
      'allowed',
      'allowed',
      'allowed',
      'allow',
    ],
    [
      'protocol matters',
      flow(200, { proto: 17 }),
      'unknown',
      'potentially_blocked',
      'potentially_blocked',
      'blocked',
      'default',
    ],
    ['failsafe ssh', flow(22), 'unknown', 'allowed', 'allowed', 'allowed', 'failsafe'],
    [
      'failsafe dhcp',
      flow(68, { proto: 17 }),
      'unknown',
      'allowed',
      'allowed',
      'allowed',
      'failsafe',
    ],
    [
      'loopback',
      flow(300, { loopback: true }),
      'unknown',
      'allowed',
      'allowed',
      'allowed',
      'loopback',
    ],
  ])('%s', (_n, f, idle, vis, sel, full, stage) => {
    const got = (['idle', 'visibility_only', 'selective', 'full'] as const).map(
      (m) => decide(policy(m, RULES), DEFAULT_FAILSAFE, f).decision,
    )
    expect(got).toEqual([idle, vis, sel, full])
    expect(decide(policy('full', RULES), DEFAULT_FAILSAFE, f).stage).toBe(stage)
  })

  it('puts loopback through policy when the workload is in a loopback scope', () => {
    expect(
      decide(policy('full', RULES, true), DEFAULT_FAILSAFE, flow(300, { loopback: true })).decision,
    ).toBe('blocked')
  })

  it('allows the agent channel to its server only', () => {
    const fs = { ...DEFAULT_FAILSAFE, servers: [{ address: '198.18.0.1', port: 8443 }] }
    expect(
      decide(policy('full', []), fs, flow(8443, { direction: 'outbound', peer: '198.18.0.1' }))
        .stage,
    ).toBe('failsafe')
    expect(
      decide(policy('full', []), fs, flow(8443, { direction: 'outbound', peer: '198.18.0.2' }))
        .decision,
    ).toBe('blocked')
  })

  it('names the deciding rule', () => {
    expect(decide(policy('full', RULES), DEFAULT_FAILSAFE, flow(300)).ruleKey).toBe('r300-deny')
  })
})
