import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addressSetContains,
  addressSetOf,
  addrToBigInt,
  bigIntToAddr,
  IpParseError,
  intervalsToCidrs,
  normaliseCidr,
  subtractIntervals,
} from './ip.js'

describe('address sets', () => {
  it.each([
    [[{ from: '198.18.0.0/24' }], ['198.18.0.0/24'], []],
    [[{ from: '198.18.0.7/24' }], ['198.18.0.0/24'], []],
    [
      [{ from: '198.18.0.1', to: '198.18.0.6' }],
      ['198.18.0.1/32', '198.18.0.2/31', '198.18.0.4/31', '198.18.0.6/32'],
      [],
    ],
    [[{ from: '198.18.0.0/24' }, { from: '198.18.1.0/24' }], ['198.18.0.0/23'], []],
    [[{ from: '0.0.0.0/0' }, { from: '128.0.0.0/1', exclusion: true }], ['0.0.0.0/1'], []],
    [
      [{ from: '198.18.0.0/30' }, { from: '198.18.0.2', exclusion: true }],
      ['198.18.0.0/31', '198.18.0.3/32'],
      [],
    ],
    [[{ from: '2001:db8::/32' }, { from: '2001:db8::1' }], [], ['2001:db8::/32']],
    [[{ from: '::/0' }, { from: '0.0.0.0/0' }], ['0.0.0.0/0'], ['::/0']],
  ])('%j normalises', (entries, v4, v6) => {
    expect(addressSetOf(entries)).toEqual({ v4, v6 })
  })

  it.each([['300.1.1.1'], ['1.2.3.4/33'], ['::1/129'], ['nonsense'], ['1.2.3.4/x']])(
    'rejects %s with a clear error',
    (bad) => {
      expect(() => addressSetOf([{ from: bad }])).toThrow(IpParseError)
    },
  )

  it('rejects a range that mixes families or runs backwards', () => {
    expect(() => addressSetOf([{ from: '198.18.0.1', to: '::1' }])).toThrow(/mixes/)
    expect(() => addressSetOf([{ from: '198.18.0.9', to: '198.18.0.1' }])).toThrow(/before/)
  })

  it('round-trips addresses through integers', () => {
    for (const a of [
      '0.0.0.0',
      '255.255.255.255',
      '198.18.3.4',
      '::',
      '2001:db8::1',
      'fe80::1:2',
    ]) {
      const { family, value } = addrToBigInt(a)
      expect(bigIntToAddr(family, value)).toBe(a)
    }
    expect(normaliseCidr('198.18.0.9')).toBe('198.18.0.9/32')
  })

  it('CIDR lists cover exactly the input ranges (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 300 })), {
          maxLength: 8,
        }),
        fc.array(fc.integer({ min: 0, max: 4400 }), { maxLength: 6 }),
        (ranges, excluded) => {
          const base = addrToBigInt('198.18.0.0').value
          const inc = ranges.map(([s, l]) => ({ lo: base + BigInt(s), hi: base + BigInt(s + l) }))
          const exc = excluded.map((e) => ({ lo: base + BigInt(e), hi: base + BigInt(e) }))
          const cidrs = intervalsToCidrs(4, subtractIntervals(inc, exc))
          const set = { v4: cidrs, v6: [] }
          for (let i = 0; i < 4400; i += 7) {
            const ip = bigIntToAddr(4, base + BigInt(i))
            const want =
              inc.some((r) => base + BigInt(i) >= r.lo && base + BigInt(i) <= r.hi) &&
              !exc.some((r) => r.lo === base + BigInt(i))
            expect(addressSetContains(set, ip)).toBe(want)
          }
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('address text', () => {
  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0000:0000:0000:0001', '2001:db8:0:1::1'],
    ['fe80:0:0:0:1:0:0:0', 'fe80::1:0:0:0'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
  ])('formats %s as %s', (input, want) => {
    const { family, value } = addrToBigInt(input)
    expect(bigIntToAddr(family, value)).toBe(want)
  })

  it.each([
    ['1:2:3:4:5:6:7:8:9'],
    ['1::2::3'],
    ['12345::'],
    ['1:2:3:4:5:6:7'],
    ['01.2.3.4'],
    ['1.2.3'],
    ['::g'],
    [':'],
    ['1.2.3.4.5'],
  ])('refuses %s', (bad) => {
    expect(() => addrToBigInt(bad)).toThrow(IpParseError)
  })
})
