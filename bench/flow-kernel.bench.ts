/**
 * What counting flows in the kernel costs, on raw rules without the agent: the floor that flow
 * collection can reach once no new connection costs userspace work. For each backend, new TCP
 * connections per second to an allowed port with the allow rule alone, and with the allow rule
 * counting each connection into a kernel set keyed by (source, destination, protocol, port,
 * rule tag), as a ratio (interleaved rounds); and whether the counts read back once per round
 * equal the connections made.
 *
 * Each connection is counted once by counting only the first packet of a conntrack entry (`ct
 * status` not yet confirmed): a retransmitted SYN of an allowed connection finds its entry
 * confirmed. (A connection that is dropped, by us or after us, is never confirmed and each
 * retransmission would count: those decisions need a set of 5-tuples seen, with a timeout and,
 * for TCP, the sequence number; not measured here, as they are not the connections a host
 * makes at high rates.)
 *
 * nftables: a dynamic set with per-element counters, written by `update @set { key }`. The
 * counting rule comes in two copies, each live only while a "generation" set holds the packet's
 * family: the reader flips the generation (one transaction), then reads and flushes the set no
 * packet writes to any more, so no count falls between a read and a flush.
 * iptables (nft and legacy): ipsets (`hash:ip,port,ip` with counters: a known key is counted by
 * `-m set --match-set`, a new one as `-j SET --add-set` creates it, which starts its counter at
 * this packet; re-adding with `--exist` would reset the counter), read by swapping in an empty
 * set (`ipset swap`, atomic) and listing the old one.
 */
import type { Runner } from '@palisade/agent'
import { runChecked } from '@palisade/agent'
import { resetFirewall } from '@palisade/lab'
import { inRateLab, rateSpread, ratioSpread } from './connection-rate.js'

const PORT = 8080
const RATE_SECONDS = Number(process.env.PALISADE_BENCH_RATE_SECONDS ?? 4)
const ROUNDS = 5
const TAG = '0x3fa9c0d1'

interface Mechanism {
  /** Rules that allow the client's new connections to PORT, counting them or not. */
  install(run: Runner, client: string, counting: boolean): Promise<void>
  /** Starts a new counting period and returns the connections counted in the one that ended. */
  drain(run: Runner): Promise<number>
}

/**
 * A connection's first packet: conntrack's first sight of it (not yet confirmed) and, for TCP,
 * a SYN. Conntrack also picks up a connection mid-stream (after `conntrack -F`, or when it
 * started before tracking): that packet is new and unconfirmed too, but it is not a new
 * connection. Without the SYN test, the teardown packets of the connections of the round before
 * (its entries flushed between rounds) counted as 12-35 % more connections than were made.
 */
const FIRST_NFT = 'tcp flags & (syn | ack) == syn ct status ! confirmed'
const FIRST_IPTABLES = '--syn -m conntrack --ctstate NEW ! --ctstatus CONFIRMED'

const KEY4 = `ip saddr . ip daddr . meta l4proto . ct original proto-dst . ${TAG}`

const nftables: Mechanism = {
  async install(run, client, counting) {
    const allow = `ct state new ip saddr ${client} tcp dport ${PORT}`
    const count = (gen: 'a' | 'b') =>
      `${allow} ${FIRST_NFT} meta nfproto @gen_${gen} update @flows4_${gen} { ${KEY4} }`
    await runChecked(run, 'nft', ['-f', '-'], {
      stdin: `table inet floor {
  set gen_a { type nf_proto; elements = { ipv4, ipv6 } }
  set gen_b { type nf_proto; }
  set flows4_a { type ipv4_addr . ipv4_addr . inet_proto . inet_service . mark; flags dynamic; size 262144; counter; }
  set flows4_b { type ipv4_addr . ipv4_addr . inet_proto . inet_service . mark; flags dynamic; size 262144; counter; }
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
${counting ? `    ${count('a')}\n    ${count('b')}\n` : ''}    ${allow} accept
  }
}
`,
    })
  },
  async drain(run) {
    // One generation is live; after the flip no packet writes to the other one.
    const live = (await runChecked(run, 'nft', ['list', 'set', 'inet', 'floor', 'gen_a'])).includes(
      'ipv4',
    )
      ? 'a'
      : 'b'
    const next = live === 'a' ? 'b' : 'a'
    await runChecked(run, 'nft', ['-f', '-'], {
      stdin: `add element inet floor gen_${next} { ipv4, ipv6 }\ndelete element inet floor gen_${live} { ipv4, ipv6 }\n`,
    })
    const text = await runChecked(run, 'nft', [
      '-j',
      'list',
      'set',
      'inet',
      'floor',
      `flows4_${live}`,
    ])
    await runChecked(run, 'nft', ['flush', 'set', 'inet', 'floor', `flows4_${live}`])
    const sets = (JSON.parse(text) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables
    const elems = sets.flatMap((o) => o.set?.elem ?? []) as {
      elem?: { counter?: { packets: number } }
    }[]
    return elems.reduce((n, e) => n + (e.elem?.counter?.packets ?? 0), 0)
  },
}

const iptables = (tool: 'iptables-nft' | 'iptables-legacy'): Mechanism => ({
  async install(run, client, counting) {
    await runChecked(run, 'ipset', [
      '-exist',
      'create',
      'pal-flows4',
      'hash:ip,port,ip',
      'counters',
      'maxelem',
      '262144',
    ])
    const allow = `-s ${client}/32 -p tcp --dport ${PORT} -m conntrack --ctstate NEW`
    const first = `-s ${client}/32 -p tcp --dport ${PORT} ${FIRST_IPTABLES}`
    const rules = [
      '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      ...(counting
        ? [
            `${first} -m set --match-set pal-flows4 src,dst,dst`,
            `${first} -m set ! --match-set pal-flows4 src,dst,dst ! --update-counters -j SET --add-set pal-flows4 src,dst,dst`,
          ]
        : []),
      `${allow} -j ACCEPT`,
    ]
    await runChecked(run, `${tool}-restore`, ['--noflush'], {
      stdin: `*filter\n-F INPUT\n${rules.map((r) => `-A INPUT ${r}`).join('\n')}\nCOMMIT\n`,
    })
  },
  async drain(run) {
    await runChecked(run, 'ipset', ['restore'], {
      stdin:
        'create pal-flows4-read hash:ip,port,ip counters maxelem 262144\nswap pal-flows4 pal-flows4-read\n',
    })
    const text = await runChecked(run, 'ipset', ['list', 'pal-flows4-read'])
    await runChecked(run, 'ipset', ['destroy', 'pal-flows4-read'])
    return [...text.matchAll(/ packets (\d+) /g)].reduce((n, m) => n + Number(m[1]), 0)
  },
})

const MECHANISMS = {
  nftables,
  'iptables-nft': iptables('iptables-nft'),
  'iptables-legacy': iptables('iptables-legacy'),
}

export function run(): Promise<Record<string, unknown>> {
  return inRateLab(PORT, RATE_SECONDS, ROUNDS, async ({ server: s, client, rate }) => {
    const out: Record<string, unknown> = {}
    for (const [backend, m] of Object.entries(MECHANISMS)) {
      const samples = { plain: [] as number[], counting: [] as number[] }
      let made = 0
      let failed = 0
      let counted = 0
      for (let round = 0; round < ROUNDS; round++)
        for (const counting of [false, true]) {
          await resetFirewall(s.run)
          await m.install(s.run, client.ip4, counting)
          if (counting) await m.drain(s.run)
          const r = await rate()
          samples[counting ? 'counting' : 'plain'].push(r.perSecond)
          if (!counting) continue
          made += r.connections
          failed += r.failures
          counted += await m.drain(s.run)
        }
      out[backend] = {
        allowOnlyPerSecond: rateSpread(samples.plain),
        countingPerSecond: rateSpread(samples.counting),
        ratio: ratioSpread(samples.counting.map((x, i) => x / (samples.plain[i] ?? NaN))),
        connectionsMade: made,
        connectionsFailed: failed,
        connectionsCounted: counted,
      }
    }
    await resetFirewall(s.run)
    return out
  })
}
