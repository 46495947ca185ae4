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
  mergeCidrs,
  normaliseCidr,
  sortedAddresses,
  subtractIntervals,
} from './ip.js'
import type { AddressEntry } from './ip.js'

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

/**
 * The bigint intervals as they were before sets were made in plain numbers: the reference the
 * new ways must agree with, kept here as it was so that a change to ip.ts cannot move both.
 */
const before = {
  cidrToInterval(text: string): { family: 4 | 6; interval: { lo: bigint; hi: bigint } } {
    const [ip = '', lenText, ...rest] = text.split('/')
    const { family, value } = addrToBigInt(ip)
    const bits = family === 4 ? 32 : 128
    const len = lenText === undefined ? bits : Number(lenText)
    if (!/^\d+$/.test(lenText ?? `${bits}`) || len > bits || rest.length > 0)
      throw new IpParseError(text, `prefix length must be 0 to ${bits}`)
    const size = 1n << BigInt(bits - len)
    const lo = (value / size) * size
    return { family, interval: { lo, hi: lo + size - 1n } }
  },
  rangeToInterval(from: string, to?: string) {
    const start = before.cidrToInterval(from)
    if (to === undefined || to === '') return start
    const end = addrToBigInt(to)
    if (end.family !== start.family) throw new IpParseError(`${from}-${to}`, 'mixes IPv4 and IPv6')
    if (end.value < start.interval.lo)
      throw new IpParseError(`${from}-${to}`, 'to_ip is before from_ip')
    return { family: start.family, interval: { lo: start.interval.lo, hi: end.value } }
  },
  intervalsToCidrs(family: 4 | 6, list: readonly { lo: bigint; hi: bigint }[]): string[] {
    const bits = family === 4 ? 32 : 128
    const sorted = [...list].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0))
    const merged: { lo: bigint; hi: bigint }[] = []
    for (const cur of sorted) {
      const last = merged[merged.length - 1]
      if (last && cur.lo <= last.hi + 1n) {
        if (cur.hi > last.hi) merged[merged.length - 1] = { lo: last.lo, hi: cur.hi }
      } else merged.push(cur)
    }
    const out: string[] = []
    for (const iv of merged) {
      for (let lo = iv.lo; lo <= iv.hi;) {
        const zeros = lo === 0n ? bits : (lo & -lo).toString(2).length - 1
        const size = Math.min(zeros, (iv.hi - lo + 1n).toString(2).length - 1)
        out.push(`${bigIntToAddr(family, lo)}/${bits - size}`)
        lo += 1n << BigInt(size)
      }
    }
    return out
  },
}

/**
 * IPv4 sets are made in plain numbers, not in the bigint intervals: the two must agree on every
 * input, the edges of the address space, spellings that are not canonical, lengths that are not
 * lengths and addresses of the other family included.
 */
describe('IPv4 sets in numbers', () => {
  const edge = fc.oneof(
    fc.constantFrom(0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1),
    fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    // a small range, where blocks touch and overlap
    fc.integer({ min: 0, max: 300 }).map((n) => 3323068416 + n),
  )
  const v4 = (n: number) => bigIntToAddr(4, BigInt(n))
  /** An address or CIDR, written as a user or a kernel might: host bits set, lengths with 0s. */
  const cidr = fc.oneof(
    {
      weight: 8,
      arbitrary: fc
        .tuple(edge, fc.integer({ min: 0, max: 33 }))
        .map(([a, len]) => (len === 33 ? v4(a) : `${v4(a)}/${len}`)),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(edge, fc.constantFrom('/', '/024', '/+3', '/ 3', '/3/4', '/x', '/99999999999'))
        .map(([a, len]) => `${v4(a)}${len}`),
    },
    { weight: 1, arbitrary: fc.constantFrom('fd00::1', '::ffff:198.18.0.1', '198.18.0', '') },
  )
  const reference = (cidrs: readonly string[]) =>
    before.intervalsToCidrs(
      4,
      cidrs.map((c) => before.cidrToInterval(c).interval),
    )
  const outcome = <T>(f: () => T): { value: T } | { error: string } => {
    try {
      return { value: f() }
    } catch (e) {
      return { error: (e as Error).message }
    }
  }

  it('mergeCidrs is intervalsToCidrs of the intervals, errors included (property)', () => {
    fc.assert(
      fc.property(fc.array(cidr, { maxLength: 12 }), (cidrs) => {
        expect(outcome(() => mergeCidrs(4, cidrs))).toEqual(outcome(() => reference(cidrs)))
      }),
      { numRuns: 400 },
    )
  })

  // Addresses next to each other, also across the carry from one 32-bit part to the next.
  const near = fc.oneof(
    fc.bigInt({ min: 0n, max: 12n }).map((n) => 2n ** 96n - 6n + n),
    fc.bigInt({ min: 0n, max: 12n }).map((n) => 2n ** 40n + n),
  )
  const address6 = fc.oneof(
    near.map((n) => bigIntToAddr(6, n)),
    near.map((n) => bigIntToAddr(6, n).toUpperCase()),
    fc.constantFrom('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::FFFF:0:0', '2001:db8::'),
  )
  const cidr6 = fc
    .tuple(address6, fc.constantFrom('', '/128', '/127', '/64', '/0128'))
    .map(([a, len]) => `${a}${len}`)
  const single6 = fc.tuple(address6, fc.constantFrom('', '/128')).map(([a, len]) => `${a}${len}`)

  it('mergeCidrs of IPv6 is intervalsToCidrs of the intervals (property)', () => {
    // Single addresses alone (the way that takes them in order as they are) and with prefixes.
    const list = fc.oneof(fc.array(single6, { maxLength: 10 }), fc.array(cidr6, { maxLength: 10 }))
    fc.assert(
      fc.property(list, (cidrs) => {
        expect(outcome(() => mergeCidrs(6, cidrs))).toEqual(
          outcome(() =>
            before.intervalsToCidrs(
              6,
              cidrs.map((c) => before.cidrToInterval(c).interval),
            ),
          ),
        )
      }),
      { numRuns: 400 },
    )
  })

  it('addressSetOf agrees with the intervals, both families, ranges and exclusions (property)', () => {
    const entry = fc.record(
      {
        from: fc.oneof(cidr, single6, cidr6, fc.constant('nonsense')),
        to: fc.oneof(edge.map(v4), address6, fc.constantFrom('', 'nonsense')),
        exclusion: fc.boolean(),
      },
      { requiredKeys: ['from'] },
    )
    // Mostly single IPv6 addresses with IPv4 entries (the way that keeps them as text), or all.
    const singles = fc.record({ from: single6 })
    const list = fc.oneof(
      fc.array(fc.oneof(singles, fc.record({ from: cidr })), { maxLength: 10 }),
      fc.array(entry, { maxLength: 10 }),
    )
    fc.assert(
      fc.property(list, (entries: readonly AddressEntry[]) => {
        const want = outcome(() => {
          const all = entries.map((e) => ({
            ...before.rangeToInterval(e.from, e.to),
            out: e.exclusion,
          }))
          const of = (f: 4 | 6, x: boolean) =>
            all.filter((r) => r.family === f && !!r.out === x).map((r) => r.interval)
          const family = (f: 4 | 6) =>
            intervalsToCidrs(f, subtractIntervals(of(f, false), of(f, true)))
          return { v4: family(4), v6: family(6) }
        })
        const got = outcome(() => addressSetOf(entries))
        expect(got).toEqual(want)
        if ('value' in got)
          expect(addressSetSize(entries, 5)).toBe(
            Math.min(got.value.v4.length + got.value.v6.length, 6),
          )
      }),
      { numRuns: 400 },
    )
  })

  it('sortedAddresses orders single addresses as their values do, both families (property)', () => {
    const one = fc.oneof(
      edge.map((n) => `${v4(n)}/32`),
      edge.map(v4),
      fc.ipV6().map((a) => `${a}/128`),
      fc.ipV6().map((a) => a.toUpperCase()),
    )
    fc.assert(
      fc.property(fc.array(one, { maxLength: 12 }), (list) => {
        const families = new Set(list.map((a) => (a.includes(':') ? 6 : 4)))
        fc.pre(families.size <= 1)
        const want = list
          .map((a) => canonicalCidr(a).text)
          .map((c) => ({ c, v: addrToBigInt(c.slice(0, c.indexOf('/'))).value }))
          .sort((a, b) => (a.v < b.v ? -1 : a.v > b.v ? 1 : 0))
          .map((x) => x.c)
        expect(sortedAddresses(list)).toEqual(want)
      }),
      { numRuns: 400 },
    )
  })

  it('takes a canonical CIDR that merges with nothing as it is', () => {
    expect(mergeCidrs(4, ['198.18.0.4/32', '198.18.0.0/30', '198.18.0.9'])).toEqual([
      '198.18.0.0/30',
      '198.18.0.4/32',
      '198.18.0.9/32',
    ])
    expect(mergeCidrs(4, ['198.18.0.4/030', '198.18.0.5/30'])).toEqual(['198.18.0.4/30'])
    expect(() => mergeCidrs(4, ['198.18.0.4/33'])).toThrow(IpParseError)
    // found by the property: an IPv6 address rewritten from its three numbers
    expect(sortedAddresses(['2001:DB8::1/128', '::0:0:0:0'])).toEqual(['::/128', '2001:db8::1/128'])
  })
})
