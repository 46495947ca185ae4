import { describe, expect, it } from 'vitest'
import type { Runner } from '../exec.js'
import { flowCountTag } from '@palisade/firewall'
import { countedPolicy, countingState } from './counting.fixture.js'
import { readIpsetCounts, readKernelCounts } from './kernel-counts.js'

const setListing = (name: string, body: string) =>
  `{"nftables": [{"metainfo": {}}, {"set": {"family": "inet", "name": "${name}", "table": "palisade", "handle": 2, "size": 262144${body}}}]}`

const element = (proto: unknown, packets: number) =>
  `{"elem": {"val": {"concat": ["198.18.0.2", "198.18.0.1", ${JSON.stringify(proto)}, 80, 42]}, "counter": {"packets": ${packets}, "bytes": 60}}}`

/** A kernel that answers `nft` as listed: each count set's elements, generation a live. */
function kernel(counts: Record<string, string>): { run: Runner; calls: string[] } {
  const calls: string[] = []
  const run: Runner = (cmd, args, opts) => {
    calls.push([cmd, ...args].join(' ') + (opts?.stdin ? `\n${opts.stdin}` : ''))
    const name = args.at(-1) ?? ''
    if (args.includes('list')) {
      const body =
        name === 'flow_gen_a' ? ', "elem": ["ipv4", "ipv6"]' : `, "elem": [${counts[name] ?? ''}]`
      return Promise.resolve({ code: 0, stdout: setListing(name, body), stderr: '' })
    }
    return Promise.resolve({ code: 0, stdout: '', stderr: '' })
  }
  return { run, calls }
}

describe('readKernelCounts', () => {
  it('asks for protocols as numbers, so one /etc/protocols names (vrrp) reads as 112', async () => {
    const k = kernel({ flows4_a: element(112, 3) })
    const read = await readKernelCounts(k.run)
    expect(read.entries).toEqual([
      { src: '198.18.0.2', dst: '198.18.0.1', proto: 112, port: 80, tag: 42, connections: 3 },
    ])
    expect(k.calls.filter((c) => c.includes(' list ')).every((c) => c.includes(' -p '))).toBe(true)
  })

  it('flips (the next generation live, then the old one dead), reads, then flushes the generation it read', async () => {
    const k = kernel({})
    await readKernelCounts(k.run)
    expect(k.calls.map((c) => c.split('\n').slice(0, 2).join(' | '))).toEqual([
      'nft -j -p list set inet palisade flow_gen_a',
      'nft -f - | add element inet palisade flow_gen_b { ipv4, ipv6 }',
      'nft -f - | flush set inet palisade flow_gen_a',
      'nft -j -p list set inet palisade flows4_a',
      'nft -j -p list set inet palisade flows6_a',
      'nft -f - | flush set inet palisade flows4_a',
    ])
  })

  it('flushes what it read even when a listing cannot be parsed, and says why', async () => {
    const k = kernel({ flows4_a: element('no-such-protocol', 1) })
    await expect(readKernelCounts(k.run)).rejects.toThrow(/unexpected element/)
    expect(k.calls.at(-1)).toContain('flush set inet palisade flows4_a')
    expect(k.calls.at(-1)).toContain('flush set inet palisade flows6_a')
  })
})

describe('readIpsetCounts', () => {
  const policy = countedPolicy()
  const desired = countingState('iptables-legacy')

  /**
   * ipset answering `save` of a spare with `members` (for palisade-flows4-in-read), and
   * refusing the swap of `busy` (being listed) its first `refusals` times.
   */
  function ipset(members: string, busy = '', refusals = 0): { run: Runner; calls: string[] } {
    const calls: string[] = []
    let refused = 0
    const run: Runner = (cmd, args, opts) => {
      calls.push([cmd, ...args].join(' ') + (opts?.stdin ? `\n${opts.stdin}` : ''))
      if (args[0] === 'swap' && args[1] === busy && refused++ < refusals)
        return Promise.resolve({ code: 1, stdout: '', stderr: 'Set cannot be swapped: in use' })
      const name = args[1] ?? ''
      const stdout =
        args[0] === 'save'
          ? `create ${name} hash:ip,port,ip family inet hashsize 1024 maxelem 262144 counters bucketsize 12 initval 0x1\n${name === 'palisade-flows4-in-read' ? members : ''}`
          : ''
      return Promise.resolve({ code: 0, stdout, stderr: '' })
    }
    return { run, calls }
  }

  it('swaps every counting set with its spare, lists the spares, then empties them', async () => {
    const k = ipset(
      'add palisade-flows4-in-read 198.18.0.2,tcp:8080,198.18.0.1 packets 7 bytes 420\n' +
        'add palisade-flows4-in-read 198.18.0.9,tcp:8080,198.18.0.1 packets 2 bytes 120\n',
    )
    const read = await readIpsetCounts(k.run, desired)
    const tag = flowCountTag('inbound', policy.rules[0]?.key ?? '')
    expect(read.entries).toEqual([
      { src: '198.18.0.2', dst: '198.18.0.1', proto: 6, port: 8080, tag, connections: 7 },
    ])
    // a key no counting rule of the policy meets (another peer) is counted, not attributed
    expect(read.unattributed).toBe(2)
    const sets = ['4-in', '4-out', '6-in', '6-out'].map((x) => `palisade-flows${x}`)
    expect(k.calls.slice(0, 4)).toEqual(sets.map((s) => `ipset swap ${s} ${s}-read`))
    expect(k.calls.slice(4, 8).sort()).toEqual(sets.map((s) => `ipset save ${s}-read`).sort())
    expect(k.calls[8]).toBe(`ipset restore\n${sets.map((s) => `flush ${s}-read`).join('\n')}\n`)
    expect(read.unread).toBeUndefined()
  })

  it('tries a refused swap again, and leaves a set still refused for the next read', async () => {
    const members =
      'add palisade-flows4-in-read 198.18.0.2,tcp:8080,198.18.0.1 packets 7 bytes 420\n'
    const twice = ipset(members, 'palisade-flows4-in', 2)
    expect((await readIpsetCounts(twice.run, desired)).entries).toHaveLength(1)
    expect(twice.calls.filter((c) => c.startsWith('ipset swap palisade-flows4-in '))).toHaveLength(
      3,
    )
    const always = ipset(members, 'palisade-flows4-in', 99)
    const read = await readIpsetCounts(always.run, desired)
    // its spare is neither listed nor emptied: the live set keeps its counts
    expect(read).toMatchObject({ entries: [], unread: ['palisade-flows4-in'] })
    const after = always.calls.filter((c) => !c.startsWith('ipset swap'))
    expect(after.some((c) => c.includes('palisade-flows4-in-read'))).toBe(false)
    expect(always.calls.filter((c) => c.startsWith('ipset save'))).toHaveLength(3)
  })

  it('reads a protocol ipset prints by number (no /etc/protocols entry)', async () => {
    const k = ipset(
      'add palisade-flows4-in-read 198.18.0.2,6:8080,198.18.0.1 packets 4 bytes 240\n',
    )
    expect((await readIpsetCounts(k.run, desired)).entries).toMatchObject([
      { proto: 6, connections: 4 },
    ])
  })

  it('empties the spares even when a listing cannot be parsed', async () => {
    const k = ipset(
      'add palisade-flows4-in-read 198.18.0.2,icmp:ping,198.18.0.1 packets 1 bytes 84\n',
    )
    await expect(readIpsetCounts(k.run, desired)).rejects.toThrow(/unexpected element/)
    expect(k.calls.at(-1)).toMatch(/^ipset restore\nflush palisade-flows4-in-read\n/)
  })
})
