import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from '../test-server.fixture.js'
import { testServer } from '../test-server.fixture.js'
import { MAX_IP_LIST_CIDRS } from './policy-checks.js'

describe('IP list size', () => {
  let s: TestServer
  beforeAll(async () => (s = await testServer()))
  afterAll(() => s.close())

  const post = (ip_ranges: unknown[]) =>
    s.call('POST', '/api/v2/orgs/1/sec_policy/draft/ip_lists', { name: 'big', ip_ranges })

  it('refuses a list of wide IPv6 ranges that would expand past the cap, saying why', async () => {
    // each range from ...::1 to ...:fffe is 254 CIDR blocks: 2,000 of them are 508,000
    const ranges = Array.from({ length: 2000 }, (_, i) => ({
      from_ip: `${(0x2000 + i).toString(16)}::1`,
      to_ip: `${(0x2000 + i).toString(16)}:ffff:ffff:ffff:ffff:ffff:ffff:fffe`,
    }))
    const r = await post(ranges)
    expect(r.statusCode).toBe(406)
    const issues = r.json<{ token: string; message: string }[]>()
    expect(issues).toEqual([
      {
        token: 'ip_list_too_large',
        message: expect.stringMatching(/ip_ranges.*more than 50,000 CIDR blocks/) as string,
      },
    ])
    expect(MAX_IP_LIST_CIDRS).toBe(50_000)
  })

  it('takes the largest list of single addresses (10,000), and ranges just within the cap', async () => {
    const singles = Array.from({ length: 10_000 }, (_, i) => ({
      from_ip: `10.${i >> 8}.${i & 255}.1`,
    }))
    expect((await post(singles)).statusCode).toBe(201)
    // 196 ranges of 254 blocks: 49,784
    const wide = Array.from({ length: 196 }, (_, i) => ({
      from_ip: `${(0x2000 + i).toString(16)}::1`,
      to_ip: `${(0x2000 + i).toString(16)}:ffff:ffff:ffff:ffff:ffff:ffff:fffe`,
    }))
    expect((await post(wide)).statusCode).toBe(201)
  })
})
