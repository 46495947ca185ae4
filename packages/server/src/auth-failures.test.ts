import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildApp } from './app.js'
import { AuthFailures, sourceOf } from './auth-failures.js'
import { bootstrapOrg } from './bootstrap.js'
import { hashPassword, verifyUserPassword } from './crypto.js'
import { openDb } from './db/open.js'
import { ApiError } from './errors.js'
import { testContext } from './test-server.fixture.js'

const T0 = Date.parse('2026-12-01T00:00:00Z')

describe('sourceOf', () => {
  it.each([
    ['198.18.0.1', '198.18.0.1'],
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::99', '2001:db8:1:2::/64'],
    ['::1', '::/64'],
    ['not an address', 'not an address'],
  ])('%s is counted as %s', (ip, src) => expect(sourceOf(ip)).toBe(src))

  it('counts the addresses of one IPv6 /64 together', () => {
    const f = new AuthFailures(2, () => T0)
    f.fail('2001:db8:1:2::1', 'request.authentication_failed', 'a', 'r')
    f.fail('2001:db8:1:2::2', 'request.authentication_failed', 'a', 'r')
    expect(() => f.check('2001:db8:1:2::3', 'a')).toThrow(ApiError)
    f.check('2001:db8:1:3::1', 'a')
  })
})

describe('AuthFailures', () => {
  it('refuses a name from a source past its limit until its minute ends, and not the others', () => {
    let t = T0
    const f = new AuthFailures(3, () => t)
    for (let i = 0; i < 3; i++) {
      f.check('198.18.0.1', 'k1')
      f.fail('198.18.0.1', 'request.authentication_failed', 'k1', 'bad')
    }
    expect(() => f.check('198.18.0.1', 'k1')).toThrow(ApiError)
    try {
      f.check('198.18.0.1', 'k1')
    } catch (e) {
      expect((e as ApiError).status).toBe(429)
      expect((e as ApiError).headers['Retry-After']).toBe('60')
    }
    f.check('198.18.0.2', 'k1')
    // An administrator behind the same address is not locked out by someone else's failures.
    f.check('198.18.0.1', 'admin')
    t += 59_999
    expect(() => f.check('198.18.0.1', 'k1')).toThrow(ApiError)
    t += 1
    f.check('198.18.0.1', 'k1')
  })

  it('refuses the whole source past ten times the limit across names (a spray)', () => {
    const f = new AuthFailures(3, () => T0)
    for (let i = 0; i < 29; i++) f.fail('198.18.0.1', 'user.login_failed', `u${i}`, 'bad')
    f.check('198.18.0.1', 'admin')
    f.fail('198.18.0.1', 'user.login_failed', 'u29', 'bad')
    expect(() => f.check('198.18.0.1', 'admin')).toThrow(ApiError)
    f.check('198.18.0.2', 'admin')
  })

  it('counts a long name by its first 64 characters, so length cannot dodge the limit', () => {
    const f = new AuthFailures(1, () => T0)
    f.fail('198.18.0.1', 'user.login_failed', `${'a'.repeat(64)}x`, 'bad')
    expect(() => f.check('198.18.0.1', `${'a'.repeat(64)}y`)).toThrow(ApiError)
  })

  it('sums a source minute into one summary per kind, given once, after the minute', () => {
    let t = T0
    const f = new AuthFailures(1000, () => t)
    for (let i = 0; i < 50; i++)
      f.fail('198.18.0.1', 'request.authentication_failed', `user${i % 7}`, i < 25 ? 'a' : 'b')
    f.fail('198.18.0.1', 'user.login_failed', 'admin', 'wrong password')
    f.fail('198.18.0.9', 'request.authentication_failed', 'x', 'a')
    expect(f.takeEnded()).toEqual([])
    t += 60_000
    const got = f.takeEnded()
    expect(got).toEqual([
      {
        event_type: 'request.authentication_failed',
        src_ip: '198.18.0.1',
        count: 50,
        first_at: '2026-12-01T00:00:00.000Z',
        last_at: '2026-12-01T00:00:00.000Z',
        usernames: ['user0', 'user1', 'user2', 'user3', 'user4'],
        reasons: ['a', 'b'],
      },
      expect.objectContaining({ event_type: 'user.login_failed', count: 1 }),
      expect.objectContaining({ src_ip: '198.18.0.9', count: 1 }),
    ])
    expect(f.takeEnded(true)).toEqual([])
  })

  it('closes a source minute when the source fails again after it', () => {
    let t = T0
    const f = new AuthFailures(1000, () => t)
    f.fail('198.18.0.1', 'request.authentication_failed', 'a', 'r')
    t += 61_000
    f.fail('198.18.0.1', 'request.authentication_failed', 'b', 'r')
    expect(f.takeEnded().map((s) => s.usernames)).toEqual([['a']])
    expect(f.takeEnded(true).map((s) => s.usernames)).toEqual([['b']])
  })
})

describe('a flood of bad credentials from one address', () => {
  it('is refused with 429 past the limit for the name tried, not for others, and costs one audit event', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-authflood-'))
    const { db, writeLanes } = await openDb(undefined, dir)
    await bootstrapOrg(db)
    const app = await buildApp(testContext(db, writeLanes), { authFailuresPerMinute: 30 })
    const events = async () =>
      (
        await db
          .selectFrom('events')
          .selectAll()
          .where('event_type', '=', 'request.authentication_failed')
          .execute()
      ).map((e) => JSON.parse(e.notifications) as { info: Record<string, unknown> }[])
    try {
      const attempt = async (name: string) =>
        (
          await app.inject({
            url: '/api/v2/orgs/1/labels',
            headers: { authorization: `Basic ${Buffer.from(`${name}:x`).toString('base64')}` },
          })
        ).statusCode
      const statuses: number[] = []
      for (let i = 0; i < 40; i++) statuses.push(await attempt('nobody'))
      expect(statuses).toEqual([...Array<number>(30).fill(401), ...Array<number>(10).fill(429)])
      expect(await attempt('someone-else')).toBe(401)
      expect(await events()).toEqual([])
    } finally {
      await app.close()
    }
    const written = await events()
    expect(written).toHaveLength(1)
    expect(written[0]?.[0]?.info).toMatchObject({ src_ip: '127.0.0.1', count: 31 })
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
})

describe('verifyUserPassword', () => {
  it('checks an unknown user against a real scrypt hash, and never accepts', async () => {
    const stored = await hashPassword('right')
    expect(await verifyUserPassword('right', stored)).toBe(true)
    expect(await verifyUserPassword('wrong', stored)).toBe(false)
    expect(await verifyUserPassword('right', undefined)).toBe(false)
    expect(await verifyUserPassword('', undefined)).toBe(false)
  })
})
