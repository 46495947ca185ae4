import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { FlowLogTag } from '@palisade/firewall'
import { FlowAggregator } from './aggregate.js'
import { connectionKey, parseConntrackEvent } from './conntrack-events.js'
import type { LoggedPacket } from './nflog-pcap.js'
import { NflogPcapReader, parseIpHeader, PcapFormatError } from './nflog-pcap.js'

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', name))

describe('NFLOG pcap reader', () => {
  // Captured with `tcpdump -i nflog:7 -w` while a rule logged two SYNs (IPv4 and IPv6 to port 80).
  const pcap = fixture('nflog-syn-v4-v6.pcap')

  it('reads prefix, addresses and ports of each logged packet', () => {
    const got = new NflogPcapReader().push(pcap)
    expect(got.map(({ timeMs: _, ...p }) => p)).toEqual([
      {
        prefix: 'pal:A:i:abcd1234',
        family: 4,
        proto: 6,
        src: '127.0.0.1',
        dst: '127.0.0.1',
        sport: 45840,
        dport: 80,
        seq: 0x4d68160f,
        opening: true,
      },
      {
        prefix: 'pal:A:i:abcd1234',
        family: 6,
        proto: 6,
        src: '::1',
        dst: '::1',
        sport: 50806,
        dport: 80,
        seq: 0xa1ea157d,
        opening: true,
      },
    ])
    expect(got[0]?.timeMs).toBe(1795680884 * 1000 + 136)
  })

  it('gives the same packets whatever the chunking of the stream', () => {
    const whole = new NflogPcapReader().push(pcap)
    for (const size of [1, 7, 23, 24, 25, 100]) {
      const r = new NflogPcapReader()
      const got: LoggedPacket[] = []
      for (let i = 0; i < pcap.length; i += size) got.push(...r.push(pcap.subarray(i, i + size)))
      expect(got, `chunks of ${size}`).toEqual(whole)
    }
  })

  it('refuses a stream that is not NFLOG pcap', () => {
    expect(() => new NflogPcapReader().push(Buffer.alloc(24, 1))).toThrow(PcapFormatError)
    const ethernet = Buffer.from(pcap.subarray(0, 24))
    ethernet.writeUInt32LE(1, 20)
    expect(() => new NflogPcapReader().push(ethernet)).toThrow(/link type 1/)
  })

  it('reads ICMP echo ids, skips ports of later fragments and cut packets', () => {
    const v4 = (proto: number, l4: number[], frag = 0) =>
      Buffer.from([
        0x45,
        0,
        0,
        28,
        0,
        0,
        frag >> 8,
        frag & 0xff,
        64,
        proto,
        0,
        0,
        198,
        18,
        0,
        1,
        198,
        18,
        0,
        2,
        ...l4,
      ])
    expect(parseIpHeader(v4(1, [8, 0, 0, 0, 0x12, 0x34]))).toMatchObject({
      icmp: { type: 8, code: 0, id: 0x1234 },
    })
    expect(parseIpHeader(v4(1, [3, 3, 0, 0]))).toMatchObject({ icmp: { type: 3, code: 3 } })
    expect(parseIpHeader(v4(17, [0, 53, 0, 54], 0x0010))).not.toHaveProperty('sport')
    expect(parseIpHeader(v4(17, [0, 53, 0, 54]))).toMatchObject({ sport: 53, dport: 54 })
    expect(parseIpHeader(Buffer.from([0x45, 0, 0]))).toBeUndefined()
    const tcp = (flags: number) => [0, 80, 0x9c, 0x40, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, flags]
    expect(parseIpHeader(v4(6, tcp(0x02)))).toMatchObject({ seq: 7, opening: true })
    expect(parseIpHeader(v4(6, tcp(0x12)))).toMatchObject({ opening: false })
    expect(parseIpHeader(v4(6, tcp(0x10)))).toMatchObject({ opening: false })
  })
})

describe('conntrack events', () => {
  it('reads the original tuple of NEW and DESTROY lines, and agrees with the log reader', () => {
    const lines = fixture('conntrack-events.txt').toString().split('\n')
    const events = lines.map(parseConntrackEvent).filter((e) => e !== undefined)
    expect(events.map((e) => e.type)).toEqual(['NEW', 'DESTROY', 'NEW', 'DESTROY'])
    const logged = new NflogPcapReader().push(fixture('nflog-syn-v4-v6.pcap'))
    expect(events[0]?.tuple).toBe(connectionKey(logged[0] as LoggedPacket))
    expect(events[2]?.tuple).toBe(connectionKey(logged[1] as LoggedPacket))
  })

  it('reads lines without the extended layer 3 fields, as the agent asks for them', () => {
    const line =
      '[1795681890.115936]\t    [NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=50308 dport=80 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=80 dport=50308'
    expect(parseConntrackEvent(line)).toEqual({
      timeMs: 1795681890115,
      type: 'NEW',
      tuple: connectionKey({
        proto: 6,
        src: '127.0.0.1',
        dst: '127.0.0.1',
        sport: 50308,
        dport: 80,
      }),
    })
  })

  it('ignores what is not an event', () => {
    for (const l of [
      '',
      'conntrack v1.4.7 (conntrack-tools): 4 flow events have been shown.',
      '[1.2] [NEW] ipv4 2 tcp 6 120 SYN_SENT',
    ])
      expect(parseConntrackEvent(l)).toBeUndefined()
    expect(
      parseConntrackEvent(
        '[100.5]\t    [NEW] ipv4     2 icmp     1 30 src=198.18.0.1 dst=198.18.0.2 type=8 code=0 id=77 [UNREPLIED] src=198.18.0.2 dst=198.18.0.1 type=0 code=0 id=77',
      ),
    ).toEqual({
      timeMs: 100_500,
      type: 'NEW',
      tuple: connectionKey({
        proto: 1,
        src: '198.18.0.1',
        dst: '198.18.0.2',
        icmp: { type: 8, id: 77 },
      }),
    })
  })
})

describe('flow aggregation', () => {
  const T = Date.UTC(2026, 10, 26, 8, 0, 0)
  const syn = (sport: number, at: number, dport = 443): LoggedPacket => ({
    timeMs: T + at,
    prefix: '',
    family: 4,
    proto: 6,
    src: '198.18.0.11',
    dst: '198.18.0.10',
    sport,
    dport,
  })
  const tag = (decision: FlowLogTag['decision'], rule: string | null = 'r1'): FlowLogTag => ({
    decision,
    direction: 'inbound',
    ruleLogKey: rule,
  })
  const make = (detail = false, watching = true) => {
    const a = new FlowAggregator({
      detail,
      graceMs: 2000,
      ruleHref: (k) => (k === 'r1' ? '/rules/1' : undefined),
    })
    a.watchConfirmations(watching)
    return a
  }

  it('counts connections once, sums over client ports, and keeps first and last seen', () => {
    const a = make()
    for (const [sport, at] of [
      [1000, 0],
      [1001, 100],
      [1000, 1000],
      [1002, 3000],
    ] as const) {
      a.logged(syn(sport, at), tag('allowed'))
      a.confirmed(connectionKey(syn(sport, at)), T + at)
    }
    a.settle(T + 10_000)
    expect(a.drain()).toEqual([
      {
        direction: 'inbound',
        src_ip: '198.18.0.11',
        dst_ip: '198.18.0.10',
        port: 443,
        proto: 6,
        policy_decision: 'allowed',
        rule_href: '/rules/1',
        num_connections: 3,
        first_seen: new Date(T).toISOString(),
        last_seen: new Date(T + 3000).toISOString(),
        dropped_downstream: false,
      },
    ])
    expect(a.drain()).toEqual([])
  })

  it('counts a reused client port as a new connection, and a retransmitted SYN once', () => {
    const a = make()
    const first = { ...syn(1000, 0), seq: 7 }
    a.logged(first, tag('blocked'))
    a.logged({ ...first, timeMs: T + 1000 }, tag('blocked'))
    a.logged({ ...first, timeMs: T + 2000, seq: 99 }, tag('blocked'))
    a.settle(T + 10_000)
    expect(a.drain()[0]?.num_connections).toBe(2)
  })

  it('does not count a stray TCP segment of a connection conntrack forgot, only an opening SYN', () => {
    const a = make(false, false)
    a.logged({ ...syn(1000, 0), opening: false }, tag('potentially_blocked'))
    a.logged({ ...syn(1001, 0), opening: true }, tag('potentially_blocked'))
    a.settle(T + 10_000)
    expect(a.drain().map((f) => f.num_connections)).toEqual([1])
  })

  it('does not take an earlier connection on the same tuple as a confirmation', () => {
    const a = make()
    a.confirmed(connectionKey(syn(1000, 0)), T - 5000)
    a.logged(syn(1000, 0), tag('allowed'))
    a.settle(T + 5000)
    expect(a.drain()[0]?.dropped_downstream).toBe(true)
  })

  it('keeps the client port at full detail', () => {
    const a = make(true)
    a.logged(syn(1000, 0), tag('blocked'))
    a.logged(syn(1001, 0), tag('blocked'))
    a.settle(T + 5000)
    expect(a.drain().map((s) => [s.src_port, s.num_connections])).toEqual([
      [1000, 1],
      [1001, 1],
    ])
  })

  // [case, decision, confirmed by the kernel, confirmations lost, final flush, dropped downstream]
  const cases: [string, FlowLogTag['decision'], boolean, boolean, boolean, boolean][] = [
    ['allowed and confirmed', 'allowed', true, false, false, false],
    ['allowed, never confirmed', 'allowed', false, false, false, true],
    ['potentially blocked, never confirmed', 'potentially_blocked', false, false, false, true],
    ['blocked: we dropped it ourselves', 'blocked', false, false, false, false],
    ['confirmations were lost meanwhile', 'allowed', false, true, false, false],
    ['flushed at stop before the grace ended', 'allowed', false, false, true, false],
  ]

  it('claims no drop where nothing after us can drop (confirmations not watched)', () => {
    const a = make(false, false)
    a.logged(syn(1000, 0), tag('allowed'))
    a.settle(T + 5000)
    expect(a.drain()[0]?.dropped_downstream).toBe(false)
  })
  it.each(cases)('%s', (_, decision, confirmed, lost, final, dropped) => {
    const a = make()
    a.logged(syn(1000, 0), tag(decision, null))
    if (confirmed) a.confirmed(connectionKey(syn(1000, 0)), T + 5)
    if (lost) a.confirmationsLost(T + 100)
    a.settle(final ? T + 500 : T + 2500, final)
    const [s] = a.drain()
    expect(s).toMatchObject({
      policy_decision: decision,
      rule_href: null,
      dropped_downstream: dropped,
    })
  })

  it('waits for the grace before judging a connection', () => {
    const a = make()
    a.logged(syn(1000, 0), tag('allowed'))
    a.settle(T + 1000)
    expect(a.drain()).toEqual([])
    a.confirmed(connectionKey(syn(1000, 0)), T + 1500)
    a.settle(T + 2500)
    expect(a.drain()[0]?.dropped_downstream).toBe(false)
  })

  it('sums the kernel’s counts into the same summaries as logged connections', () => {
    const a = make()
    const key = { src: '198.18.0.11', dst: '198.18.0.10', tag: 1 }
    // a logged connection and the kernel's counts under the same key make one summary
    a.logged(syn(1000, 500), tag('allowed'))
    a.confirmed(connectionKey(syn(1000, 500)), T + 500)
    a.counted({ ...key, proto: 6, port: 443, connections: 250 }, tag('allowed'), T, T + 10_000)
    a.counted({ ...key, proto: 1, port: 8 * 256, connections: 2 }, tag('allowed'), T, T + 10_000)
    a.counted({ ...key, proto: 47, port: 0, connections: 1 }, tag('allowed', null), T, T + 10_000)
    a.settle(T + 10_000)
    const common = {
      direction: 'inbound',
      src_ip: '198.18.0.11',
      dst_ip: '198.18.0.10',
      policy_decision: 'allowed',
      dropped_downstream: false,
      first_seen: new Date(T).toISOString(),
      last_seen: new Date(T + 10_000).toISOString(),
    }
    expect(a.drain()).toEqual([
      { ...common, port: 443, proto: 6, rule_href: '/rules/1', num_connections: 251 },
      // conntrack keys ICMP by type and code
      {
        ...common,
        proto: 1,
        icmp_type: 8,
        icmp_code: 0,
        rule_href: '/rules/1',
        num_connections: 2,
      },
      // no port for a protocol without ports
      { ...common, proto: 47, rule_href: null, num_connections: 1 },
    ])
  })
})
