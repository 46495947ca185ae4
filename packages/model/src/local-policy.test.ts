import { describe, expect, it } from 'vitest'
import { hostPolicyFromLocalFile, LocalPolicyError } from './local-policy.js'

describe('local host policy file', () => {
  it('turns a file into a host policy', () => {
    const p = hostPolicyFromLocalFile({
      version: 4,
      enforcement_mode: 'selective',
      firewall_coexistence: { illumio_primary: false },
      rules: [
        { action: 'deny', direction: 'inbound', peers: 'any', services: [{ proto: 17, port: 53 }] },
        {
          action: 'allow',
          direction: 'outbound',
          peers: ['198.18.0.1-198.18.0.3', '198.18.1.0/24'],
          services: [{ proto: 6, port: 443 }],
        },
      ],
    })
    expect(p.version).toBe(4)
    expect(p.mode).toMatchObject({ mode: 'coexistence_non_primary', applied: true })
    expect(p.rules.map((r) => r.action)).toEqual(['allow', 'deny'])
    expect(p.rules[0]?.peers).toEqual({
      v4: ['198.18.0.1/32', '198.18.0.2/31', '198.18.1.0/24'],
      v6: [],
    })
  })

  it('defaults to full enforcement, exclusive, no rules', () => {
    expect(hostPolicyFromLocalFile({})).toMatchObject({
      version: 1,
      enforcementMode: 'full',
      mode: { mode: 'exclusive' },
      rules: [],
    })
  })

  it('reports every problem with its path', () => {
    try {
      hostPolicyFromLocalFile({
        enforcement_mode: 'strict',
        firewall_coexistence: true,
        rules: [
          {
            action: 'permit',
            direction: 'up',
            peers: ['300.1.1.1'],
            services: [{ proto: 6, port: 70000 }],
          },
        ],
      })
      expect.fail('should have thrown')
    } catch (e) {
      expect(e).toBeInstanceOf(LocalPolicyError)
      const paths = (e as LocalPolicyError).issues.map((i) => i.path)
      expect(paths).toEqual([
        '$.enforcement_mode',
        '$.firewall_coexistence',
        '$.rules[0].action',
        '$.rules[0].direction',
        '$.rules[0].peers',
        '$.rules[0].services[0]',
      ])
      expect((e as Error).message).toMatch(
        /invalid host policy file:\n {2}\$\.enforcement_mode: must be one of idle/,
      )
    }
  })
})
