import { isIP } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addressSetContains,
  addressSetOf,
  addressSetSize,
  addrToBigInt,
  bigIntToAddr,
  canonicalAddress,
  canonicalCidr,
  cidrCount,
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

  it('accepts exactly what Node accepts as an address (property)', () => {
    const unit = fc.constantFrom(...'0123456789abcdefABCDEF:.: ')
    const valid = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV6().map((a) => a.toUpperCase()),
    )
    // valid addresses with one character replaced, inserted or removed: the near misses
    const mutated = fc
      .tuple(valid, fc.nat(), fc.constantFrom('', ...'0:.fF'), fc.integer({ min: 0, max: 1 }))
      .map(([a, n, c, cut]) => {
        const at = n % (a.length + 1)
        return a.slice(0, at) + c + a.slice(at + cut)
      })
    const text = fc.oneof(fc.string({ unit, maxLength: 45 }), valid, mutated)
    fc.assert(
      fc.property(text, (t) => {
        let ours = true
        try {
          addrToBigInt(t)
        } catch {
          ours = false
        }
        expect(ours).toBe(isIP(t) !== 0)
      }),
      { numRuns: 3000 },
    )
  })
})

describe('canonical CIDR text', () => {
  it.each([
    ['198.18.0.9', '198.18.0.9/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['198.18.0.0/15', '198.18.0.0/15'],
    ['FD00:198:18:0::11/128', 'fd00:198:18::11/128'],
    ['::/0', '::/0'],
    ['2001:db8::/32', '2001:db8::/32'],
  ])('re-formats %s as %s', (input, want) => {
    expect(canonicalCidr(input).text).toBe(want)
  })

  it.each([
    ['198.18.0.1/24', /host bits/],
    ['2001:db8::1/64', /host bits/],
    ['198.18.0.0/33', /prefix length/],
    ['198.18.0.0/032', /prefix length/],
    ['::/129', /prefix length/],
    ['198.18.0.0/', /prefix length/],
    [' 198.18.0.1', /not an IPv4/],
    ['198.18.0.1/32 }', /prefix length/],
    ['198.18.0.1\n', /not an IPv4/],
  ])('refuses %j', (bad, why) => {
    expect(() => canonicalCidr(bad)).toThrow(why)
  })

  it.each([
    ['198.18.0.9', '198.18.0.9', 4],
    ['FD00:198:18:0::11', 'fd00:198:18::11', 6],
    ['::ffff:198.18.0.1', '::ffff:c612:1', 6],
  ])('re-formats the address %s as %s', (input, want, family) => {
    expect(canonicalAddress(input)).toEqual({ family, text: want })
  })

  it.each(['1.2.3', '198.18.0.9/32', '198.18.0.256', '01.2.3.4', '1.2.3.4 ', 'fe80::1%eth0', ''])(
    'refuses %j as an address',
    (bad) => {
      expect(() => canonicalAddress(bad)).toThrow(IpParseError)
    },
  )

  it.each([' 198.18.0.0/24', '198.18.0.0/24\n', '198.18.0.0/24/8', '198.18.0.0/ 24'])(
    'refuses %j as a range',
    (bad) => {
      expect(() => addressSetOf([{ from: bad }])).toThrow(IpParseError)
    },
  )

  it('writes any spelling of an IPv6 address as RFC 5952 does (property)', () => {
    const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }))
    fc.assert(
      fc.property(
        fc.array(group, { minLength: 8, maxLength: 8 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 })), {
          minLength: 8,
          maxLength: 8,
        }),
        fc.nat(),
        fc.nat(),
        (groups, spelling, from, length) => {
          // each group in either case and with up to 3 leading zeros; any run of zeros as ::
          const text = groups.map((g, i) => {
            const [upper, pad] = spelling[i] ?? [false, 0]
            const hex = g.toString(16).padStart(Math.min(4, g.toString(16).length + pad), '0')
            return upper ? hex.toUpperCase() : hex
          })
          const at = from % 8
          let end = at
          while (end < 8 && end - at < length % 9 && groups[end] === 0) end++
          const spelled =
            end > at
              ? `${text.slice(0, at).join(':')}::${text.slice(end).join(':')}`
              : text.join(':')
          const value = groups.reduce((v, g) => (v << 16n) | BigInt(g), 0n)
          expect(canonicalCidr(`${spelled}/128`).text).toBe(`${bigIntToAddr(6, value)}/128`)
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('agrees with normaliseCidr wherever host bits are clear (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.constant(4 as const), fc.bigInt({ min: 0n, max: 2n ** 32n - 1n })),
          fc.tuple(fc.constant(6 as const), fc.bigInt({ min: 0n, max: 2n ** 128n - 1n })),
        ),
        fc.integer({ min: 0, max: 128 }),
        ([family, value], l) => {
          const bits = family === 4 ? 32 : 128
          const len = l % (bits + 1)
          const text = `${bigIntToAddr(family, value)}/${len}`
          const hostBits = value % 2n ** BigInt(bits - len) !== 0n
          if (hostBits) expect(() => canonicalCidr(text)).toThrow(/host bits/)
          else expect(canonicalCidr(text)).toEqual({ family, text: normaliseCidr(text) })
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('cidrCount', () => {
  const iv = (lo: bigint, hi: bigint) => ({ lo, hi })
  it.each([
    ['one address', 4, [iv(5n, 5n)], 1],
    ['the whole IPv4 space', 4, [iv(0n, 2n ** 32n - 1n)], 1],
    ['the whole IPv6 space', 6, [iv(0n, 2n ** 128n - 1n)], 1],
    ['1 to 6', 4, [iv(1n, 6n)], 4],
    ['the widest IPv6 range', 6, [iv(1n, 2n ** 128n - 2n)], 254],
    ['two adjacent blocks merged', 4, [iv(0n, 127n), iv(128n, 255n)], 1],
  ] as const)('%s', (_what, family, list, n) => {
    expect(cidrCount(family, list, 1000)).toBe(n)
    expect(cidrCount(family, list, 1000)).toBe(intervalsToCidrs(family, list).length)
  })

  it('stops counting past the maximum', () => {
    expect(cidrCount(6, [iv(1n, 2n ** 128n - 2n)], 10)).toBe(11)
  })

  it('agrees with intervalsToCidrs on random ranges', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }),
        (a, b) => {
          const list = [a < b ? iv(a, b) : iv(b, a)]
          expect(cidrCount(6, list, 1000)).toBe(intervalsToCidrs(6, list).length)
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('addressSetSize', () => {
  it('counts what addressSetOf makes, exclusions taken out, both families', () => {
    const entries = [
      { from: '198.18.0.0/24' },
      { from: '198.18.0.7', exclusion: true },
      { from: '2001:db8::1', to: '2001:db8::6' },
    ]
    const set = addressSetOf(entries)
    expect(addressSetSize(entries, 1000)).toBe(set.v4.length + set.v6.length)
    expect(addressSetSize(entries, 1000)).toBe(8 + 4)
  })

  it('stops past the maximum, in either family', () => {
    const wide = [{ from: '2001:db8::1', to: '2001:db8:ffff:ffff:ffff:ffff:ffff:fffe' }]
    expect(addressSetSize(wide, 5)).toBe(6)
    expect(addressSetSize([{ from: '198.18.0.1', to: '198.18.0.6' }, ...wide], 3)).toBe(4)
  })
})
