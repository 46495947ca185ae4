import type { Workload } from '@palisade/model'
import { describe, expect, it } from 'vitest'
import { screenWorkload } from './workload-screen.js'

const base: Workload = {
  href: '/orgs/1/workloads/w1',
  name: 'w1',
  agentType: 'server',
  osPlatform: 'linux',
  enforcementMode: 'full',
  visibilityLevel: 'flow_summary',
  labels: ['/orgs/1/labels/1'],
  interfaces: [{ name: 'eth0', address: '198.18.0.1', cidrBlock: 24 }],
}
const withInterfaces = (interfaces: unknown): Workload =>
  ({ ...base, interfaces }) as unknown as Workload

describe('screening a stored workload row', () => {
  it('passes a row whose addresses parse', () => {
    expect(screenWorkload(() => base)).toEqual({ model: base })
    const v6 = withInterfaces([{ name: 'eth0', address: 'FD00::1', cidrBlock: 64 }])
    expect(screenWorkload(() => v6).model).toBe(v6)
  })

  it.each([
    [
      'a row that does not read',
      () => {
        throw new SyntaxError('Unexpected token')
      },
      /does not read: Unexpected token/,
    ],
    [
      'a short address',
      () => withInterfaces([{ name: 'eth0', address: '1.2.3' }]),
      /"1.2.3" is not an IPv4/,
    ],
    [
      'an address with a zone',
      () => withInterfaces([{ name: 'eth0', address: 'fe80::1%eth0' }]),
      /not an IPv4/,
    ],
    [
      'injected text',
      () => withInterfaces([{ name: 'eth0', address: '10.0.0.1 } ; }' }]),
      /not an IPv4/,
    ],
    [
      'a number for an address',
      () => withInterfaces([{ name: 'eth0', address: 7 }]),
      /not an IPv4/,
    ],
    [
      'a prefix too long',
      () => withInterfaces([{ name: 'eth0', address: '198.18.0.1', cidrBlock: 33 }]),
      /prefix length 33 is not 0 to 32/,
    ],
    ['interfaces not a list', () => withInterfaces({}), /interfaces are not a list/],
    [
      'labels not a list',
      () => ({ ...base, labels: 'x' }) as unknown as Workload,
      /labels are not a list/,
    ],
  ])('flags %s', (_, read, why) => {
    const r = screenWorkload(read as () => Workload)
    expect(r.model).toBeUndefined()
    expect(r.reason).toMatch(why)
  })
})
