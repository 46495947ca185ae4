import { describe, expect, it } from 'vitest'
import { FakeClock } from './clock-fake.fixture.js'
import type { ResolvedAddress } from './server-addresses.js'
import { ClusterAddresses, RESOLVE_BOUNDS, ServerAddresses } from './server-addresses.js'

/** A DNS whose answers the test sets; it counts the questions. */
function fakeDns() {
  const dns = {
    answer: [] as readonly ResolvedAddress[] | Error,
    asked: 0,
    resolve: (name: string) => {
      dns.asked++
      expect(name).toBe('policy.example.test')
      const a = dns.answer
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a)
    },
  }
  return dns
}

function setup(host = 'policy.example.test') {
  const clock = new FakeClock()
  const dns = fakeDns()
  let changes = 0
  const addresses = new ServerAddresses({
    host,
    port: 8443,
    resolve: dns.resolve,
    clock,
    log: () => undefined,
    onChange: () => changes++,
  })
  return { clock, dns, addresses, changes: () => changes }
}

describe('ServerAddresses', () => {
  it('takes an address as it is and never resolves it', async () => {
    for (const host of ['198.18.0.1', '[2001:db8::1]']) {
      const t = setup(host)
      await t.addresses.start()
      expect(t.addresses.isName).toBe(false)
      expect(t.addresses.endpoints).toEqual([{ address: host.replace(/[[\]]/g, ''), port: 8443 }])
      expect(t.dns.asked).toBe(0)
      expect(t.clock.pending).toBe(0)
    }
  })

  it('allows every A and AAAA address of a name, and resolves it again when the shortest TTL ends', async () => {
    const t = setup()
    t.dns.answer = [
      { address: '198.18.0.2', ttl: 30 },
      { address: '2001:db8::2', ttl: 20 },
      { address: '198.18.0.1', ttl: 30 },
    ]
    await t.addresses.start()
    expect(t.addresses.endpoints).toEqual([
      { address: '198.18.0.1', port: 8443 },
      { address: '198.18.0.2', port: 8443 },
      { address: '2001:db8::2', port: 8443 },
    ])
    expect(t.changes()).toBe(1)
    // the same answer again: no change
    await t.clock.advance(20_000)
    expect(t.dns.asked).toBe(2)
    expect(t.changes()).toBe(1)
    // the server moved: the failsafe follows at the next resolution, not before
    t.dns.answer = [{ address: '198.18.0.9', ttl: 3600 }]
    await t.clock.advance(19_999)
    expect(t.dns.asked).toBe(2)
    await t.clock.advance(1)
    expect(t.dns.asked).toBe(3)
    expect(t.addresses.endpoints).toEqual([{ address: '198.18.0.9', port: 8443 }])
    expect(t.changes()).toBe(2)
    // a long TTL is capped
    await t.clock.advance(RESOLVE_BOUNDS.maxMs)
    expect(t.dns.asked).toBe(4)
    t.addresses.stop()
    expect(t.clock.pending).toBe(0)
  })

  it('bounds a TTL of zero, so it is no busy loop', async () => {
    const t = setup()
    t.dns.answer = [{ address: '198.18.0.1', ttl: 0 }]
    await t.addresses.start()
    await t.clock.advance(RESOLVE_BOUNDS.minMs * 3)
    expect(t.dns.asked).toBe(4)
  })

  it('keeps the addresses resolved last while the name does not resolve', async () => {
    const t = setup()
    t.dns.answer = [{ address: '198.18.0.1', ttl: 10 }]
    await t.addresses.start()
    t.dns.answer = new Error('queryA ETIMEOUT policy.example.test')
    await t.clock.advance(10_000)
    expect(t.dns.asked).toBe(2)
    expect(t.addresses.endpoints).toEqual([{ address: '198.18.0.1', port: 8443 }])
    expect(t.changes()).toBe(1)
    // retried soon after the failure
    t.dns.answer = [{ address: '198.18.0.3', ttl: 10 }]
    await t.clock.advance(RESOLVE_BOUNDS.minMs)
    expect(t.addresses.endpoints).toEqual([{ address: '198.18.0.3', port: 8443 }])
  })

  it('says why nothing can be allowed while a name never resolved, and follows it once it does', async () => {
    const t = setup()
    t.dns.answer = new Error('queryA ENOTFOUND policy.example.test')
    await t.addresses.start()
    expect(() => t.addresses.endpoints).toThrow(
      "the policy server's name policy.example.test does not resolve (queryA ENOTFOUND policy.example.test), so the failsafe cannot allow it; check DNS or /etc/hosts, or give --management-server as an address",
    )
    expect(t.changes()).toBe(0)
    t.dns.answer = [{ address: '198.18.0.1', ttl: 60 }]
    await t.clock.advance(RESOLVE_BOUNDS.minMs)
    expect(t.addresses.endpoints).toEqual([{ address: '198.18.0.1', port: 8443 }])
    expect(t.changes()).toBe(1)
  })
})

describe('ClusterAddresses', () => {
  it('allows every server of the list, a name that does not resolve adding nothing while others are known', async () => {
    const byAddress = setup('198.18.0.1')
    const byName = setup()
    byName.dns.answer = new Error('NXDOMAIN')
    const cluster = new ClusterAddresses([byAddress.addresses, byName.addresses])
    await cluster.start()
    expect(cluster.endpoints).toEqual([{ address: '198.18.0.1', port: 8443 }])
    byName.dns.answer = [{ address: '198.18.0.2', ttl: 30 }]
    await byName.clock.advance(RESOLVE_BOUNDS.minMs)
    expect(cluster.endpoints).toEqual([
      { address: '198.18.0.1', port: 8443 },
      { address: '198.18.0.2', port: 8443 },
    ])
    cluster.stop()
    expect(byName.clock.pending).toBe(0)
  })

  it('says why while no server is known, so nothing is compiled without a way back to one', async () => {
    const byName = setup()
    byName.dns.answer = new Error('NXDOMAIN')
    const cluster = new ClusterAddresses([byName.addresses])
    await cluster.start()
    expect(() => cluster.endpoints).toThrow(/policy\.example\.test does not resolve \(NXDOMAIN\)/)
    cluster.stop()
  })

  it("gives the channel a name's addresses as the failsafe allows them, and none before it resolved", async () => {
    const byAddress = setup('198.18.0.1')
    const byName = setup()
    byName.dns.answer = new Error('NXDOMAIN')
    const cluster = new ClusterAddresses([byAddress.addresses, byName.addresses])
    await cluster.start()
    expect(cluster.addressesOf('policy.example.test')).toEqual([])
    byName.dns.answer = [
      { address: 'fd00:198:18::2', ttl: 30 },
      { address: '198.18.0.2', ttl: 30 },
    ]
    await byName.clock.advance(RESOLVE_BOUNDS.minMs)
    expect(cluster.addressesOf('policy.example.test')).toEqual(['198.18.0.2', 'fd00:198:18::2'])
    expect(cluster.addressesOf('other.example.test')).toEqual([])
    cluster.stop()
  })
})
