import { describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Runner } from '../exec.js'
import { runLocal } from '../exec.js'
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
   * The read's script run by a real shell, with `ipset` a stand-in on PATH that logs each call:
   * `save` of palisade-flows4-in-read prints `members`; `swap` of `busy` (being listed) is
   * refused its first `refusals` times.
   */
  async function ipset(members: string, busy = '', refusals = 0) {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-ipset-'))
    await writeFile(join(dir, 'members'), members)
    await writeFile(
      join(dir, 'ipset'),
      `#!/bin/sh
echo "ipset $*" >> ${dir}/calls
if [ "$1" = swap ] && [ "$2" = "${busy}" ]; then
  n=$(cat ${dir}/refused 2>/dev/null || echo 0); echo $((n+1)) > ${dir}/refused
  [ "$n" -lt ${refusals} ] && { echo "Set cannot be swapped: in use" >&2; exit 1; }
fi
if [ "$1" = save ]; then
  echo "create $2 hash:ip,port,ip family inet hashsize 1024 maxelem 262144 counters bucketsize 12 initval 0x1"
  [ "$2" = palisade-flows4-in-read ] && cat ${dir}/members
fi
exit 0
`,
      { mode: 0o755 },
    )
    const run: Runner = (cmd, args, opts) =>
      runLocal(cmd, cmd === 'sh' ? ['-c', `PATH=${dir}:$PATH\n${args[1] ?? ''}`] : args, opts)
    const calls = async () =>
      (await readFile(join(dir, 'calls'), 'utf8').catch(() => '')).split('\n').filter(Boolean)
    return { run, calls, done: () => rm(dir, { recursive: true, force: true }) }
  }

  const sets = ['4-in', '4-out', '6-in', '6-out'].map((x) => `palisade-flows${x}`)

  it('swaps every counting set with its spare, then lists and empties the spare, in one run', async () => {
    const k = await ipset(
      'add palisade-flows4-in-read 198.18.0.2,tcp:8080,198.18.0.1 packets 7 bytes 420\n' +
        'add palisade-flows4-in-read 198.18.0.9,tcp:8080,198.18.0.1 packets 2 bytes 120\n',
    )
    try {
      const read = await readIpsetCounts(k.run, desired)
      const tag = flowCountTag('inbound', policy.rules[0]?.key ?? '')
      expect(read.entries).toEqual([
        { src: '198.18.0.2', dst: '198.18.0.1', proto: 6, port: 8080, tag, connections: 7 },
      ])
      // a key no counting rule of the policy meets (another peer) is counted, not attributed
      expect(read.unattributed).toBe(2)
      expect(read.unread).toBeUndefined()
      expect(await k.calls()).toEqual(
        sets.flatMap((s) => [
          `ipset swap ${s} ${s}-read`,
          `ipset save ${s}-read`,
          `ipset flush ${s}-read`,
        ]),
      )
    } finally {
      await k.done()
    }
  })

  it('tries a refused swap again, and leaves a set still refused for the next read', async () => {
    const members =
      'add palisade-flows4-in-read 198.18.0.2,tcp:8080,198.18.0.1 packets 7 bytes 420\n'
    const twice = await ipset(members, 'palisade-flows4-in', 2)
    const always = await ipset(members, 'palisade-flows4-in', 99)
    try {
      expect((await readIpsetCounts(twice.run, desired)).entries).toHaveLength(1)
      const swaps = (await twice.calls()).filter((c) =>
        c.startsWith('ipset swap palisade-flows4-in '),
      )
      expect(swaps).toHaveLength(3)
      const read = await readIpsetCounts(always.run, desired)
      // its spare is neither listed nor emptied: the live set keeps its counts
      expect(read).toMatchObject({ entries: [], unread: ['palisade-flows4-in'] })
      const calls = await always.calls()
      expect(calls.filter((c) => c.startsWith('ipset swap palisade-flows4-in '))).toHaveLength(3)
      expect(
        calls.filter((c) => !c.startsWith('ipset swap')).some((c) => c.includes('4-in-read')),
      ).toBe(false)
      expect(calls.filter((c) => c.startsWith('ipset save'))).toHaveLength(3)
    } finally {
      await twice.done()
      await always.done()
    }
  })

  it('reads a protocol ipset prints by number (no /etc/protocols entry)', async () => {
    const k = await ipset(
      'add palisade-flows4-in-read 198.18.0.2,6:8080,198.18.0.1 packets 4 bytes 240\n',
    )
    try {
      expect((await readIpsetCounts(k.run, desired)).entries).toMatchObject([
        { proto: 6, connections: 4 },
      ])
    } finally {
      await k.done()
    }
  })

  it('refuses a listing it cannot read (the spares were emptied: counted once, never twice)', async () => {
    const k = await ipset(
      'add palisade-flows4-in-read 198.18.0.2,icmp:ping,198.18.0.1 packets 1 bytes 84\n',
    )
    try {
      await expect(readIpsetCounts(k.run, desired)).rejects.toThrow(/unexpected element/)
      expect(await k.calls()).toContain('ipset flush palisade-flows4-in-read')
    } finally {
      await k.done()
    }
  })
})
