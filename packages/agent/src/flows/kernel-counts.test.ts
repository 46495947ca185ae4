import { describe, expect, it } from 'vitest'
import type { Runner } from '../exec.js'
import { readKernelCounts } from './kernel-counts.js'

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
