import { describe, expect, it } from 'vitest'
import type { FirewallCoexistenceItem, FirewallSettings } from './firewall-settings.js'
import { DEFAULT_FIREWALL_SETTINGS } from './firewall-settings.js'
import { describeModeReason, resolveMode, workloadCoexistenceView } from './mode.js'
import type { AgentType, EnforcementMode, OsPlatform, Workload } from './workload.js'
import { AGENT_TYPES, ENFORCEMENT_MODES, OS_PLATFORMS } from './workload.js'

const WEB = '/orgs/1/labels/1' // role=web
const PROD = '/orgs/1/labels/2' // env=prod
const DEV = '/orgs/1/labels/3' // env=dev

const wl = (over: Partial<Workload> = {}): Workload => ({
  href: '/orgs/1/workloads/a',
  name: 'a',
  agentType: 'server',
  osPlatform: 'linux',
  enforcementMode: 'full',
  labels: [WEB, PROD],
  interfaces: [],
  ...over,
})
const settings = (...items: FirewallCoexistenceItem[]): FirewallSettings => ({
  ...DEFAULT_FIREWALL_SETTINGS,
  firewallCoexistence: items,
})

describe('mode resolution: every row of spec section 1', () => {
  it.each<[string, Partial<Workload>, FirewallSettings, string, boolean, string]>([
    [
      'idle is reported, not applied',
      { enforcementMode: 'idle' },
      settings(),
      'exclusive',
      false,
      'no_match',
    ],
    [
      'idle keeps the scope result',
      { enforcementMode: 'idle' },
      settings({ scope: [], illumioPrimary: true }),
      'coexistence_primary',
      false,
      'scope',
    ],
    [
      'endpoint is always primary',
      { agentType: 'endpoint' },
      settings(),
      'coexistence_primary',
      true,
      'endpoint',
    ],
    [
      'endpoint ignores a non-primary item',
      { agentType: 'endpoint' },
      settings({ scope: [], illumioPrimary: false }),
      'coexistence_primary',
      true,
      'endpoint',
    ],
    [
      'darwin: setting does not apply',
      { osPlatform: 'darwin' },
      settings({ scope: [], illumioPrimary: true }),
      'coexistence_non_primary',
      true,
      'platform',
    ],
    [
      'solaris: setting does not apply',
      { osPlatform: 'solaris' },
      settings(),
      'coexistence_non_primary',
      true,
      'platform',
    ],
    [
      'aix: setting does not apply',
      { osPlatform: 'aix' },
      settings(),
      'coexistence_non_primary',
      true,
      'platform',
    ],
    ['no items: exclusive', {}, settings(), 'exclusive', true, 'no_match'],
    [
      'empty scope matches all',
      {},
      settings({ scope: [], illumioPrimary: false }),
      'coexistence_non_primary',
      true,
      'scope',
    ],
    [
      'all scope labels carried',
      {},
      settings({ scope: [WEB, PROD], illumioPrimary: true }),
      'coexistence_primary',
      true,
      'scope',
    ],
    [
      'one scope label missing',
      {},
      settings({ scope: [WEB, DEV], illumioPrimary: true }),
      'exclusive',
      true,
      'no_match',
    ],
    [
      'windows resolves like linux',
      { osPlatform: 'windows' },
      settings({ scope: [WEB], illumioPrimary: false }),
      'coexistence_non_primary',
      true,
      'scope',
    ],
    [
      'primary wins over non-primary',
      {},
      settings({ scope: [WEB], illumioPrimary: false }, { scope: [PROD], illumioPrimary: true }),
      'coexistence_primary',
      true,
      'scope',
    ],
    [
      'non-primary when none primary',
      {},
      settings({ scope: [WEB], illumioPrimary: false }, { scope: [], illumioPrimary: false }),
      'coexistence_non_primary',
      true,
      'scope',
    ],
    [
      'enforced matches full',
      {},
      settings({ scope: [], illumioPrimary: true, workloadMode: 'enforced' }),
      'coexistence_primary',
      true,
      'scope',
    ],
    [
      'enforced matches selective',
      { enforcementMode: 'selective' },
      settings({ scope: [], illumioPrimary: true, workloadMode: 'enforced' }),
      'coexistence_primary',
      true,
      'scope',
    ],
    [
      'enforced skips visibility_only',
      { enforcementMode: 'visibility_only' },
      settings({ scope: [], illumioPrimary: true, workloadMode: 'enforced' }),
      'exclusive',
      true,
      'no_match',
    ],
    [
      'illuminated matches visibility_only',
      { enforcementMode: 'visibility_only' },
      settings({ scope: [], illumioPrimary: false, workloadMode: 'illuminated' }),
      'coexistence_non_primary',
      true,
      'scope',
    ],
    [
      'illuminated skips full',
      {},
      settings({ scope: [], illumioPrimary: false, workloadMode: 'illuminated' }),
      'exclusive',
      true,
      'no_match',
    ],
    [
      'illuminated skips idle',
      { enforcementMode: 'idle' },
      settings({ scope: [], illumioPrimary: false, workloadMode: 'illuminated' }),
      'exclusive',
      false,
      'no_match',
    ],
  ])('%s', (_name, over, s, mode, applied, reason) => {
    const r = resolveMode(wl(over), s)
    expect(r.mode).toBe(mode)
    expect(r.applied).toBe(applied)
    expect(r.reason.kind).toBe(reason)
    expect(describeModeReason(r).length).toBeGreaterThan(10)
  })

  it('names every matching item', () => {
    const r = resolveMode(
      wl(),
      settings(
        { scope: [DEV], illumioPrimary: true },
        { scope: [WEB], illumioPrimary: false },
        { scope: [], illumioPrimary: false },
      ),
    )
    expect(r.reason).toEqual({ kind: 'scope', items: [1, 2] })
  })

  // Every OS x agent type x enforcement mode combination against three settings shapes,
  // checked against an independent reading of the spec.
  const shapes: [string, FirewallSettings][] = [
    ['none', settings()],
    ['primary-all', settings({ scope: [], illumioPrimary: true })],
    [
      'nonprimary-illuminated',
      settings({ scope: [WEB], illumioPrimary: false, workloadMode: 'illuminated' }),
    ],
  ]
  const expected = (a: AgentType, p: OsPlatform, e: EnforcementMode, shape: string): string => {
    if (a === 'endpoint') return 'coexistence_primary'
    if (p === 'darwin' || p === 'solaris' || p === 'aix') return 'coexistence_non_primary'
    if (shape === 'primary-all') return 'coexistence_primary'
    if (shape === 'nonprimary-illuminated' && e === 'visibility_only')
      return 'coexistence_non_primary'
    return 'exclusive'
  }
  const combos = AGENT_TYPES.flatMap((a) =>
    OS_PLATFORMS.flatMap((p) =>
      ENFORCEMENT_MODES.flatMap((e) => shapes.map(([n, s]) => [a, p, e, n, s] as const)),
    ),
  )
  it.each(combos)('%s %s %s %s', (a, p, e, name, s) => {
    const r = resolveMode(wl({ agentType: a, osPlatform: p, enforcementMode: e }), s)
    expect(r.mode).toBe(expected(a, p, e, name))
    expect(r.applied).toBe(e !== 'idle')
  })

  it('shows exclusive as null and coexistence as illumio_primary', () => {
    expect(workloadCoexistenceView(resolveMode(wl(), settings()))).toBeNull()
    expect(
      workloadCoexistenceView(resolveMode(wl(), settings({ scope: [], illumioPrimary: true }))),
    ).toEqual({ illumio_primary: true })
    expect(
      workloadCoexistenceView(resolveMode(wl(), settings({ scope: [], illumioPrimary: false }))),
    ).toEqual({ illumio_primary: false })
  })
})
