import type { Desired, FlowCountEntry } from '@palisade/firewall'
import {
  countIpsetPairs,
  flowCountSet,
  flowGenerationSet,
  ipsetCountTagger,
  NFT_TABLE,
  parseIpsetCountRead,
  parseNftFlowCounts,
  parseNftGenerationLive,
  renderIpsetCountRead,
  renderNftCountFlush,
  renderNftFlip,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'

export interface KernelCounts {
  readonly entries: readonly FlowCountEntry[]
  /** Count sets that were full: connections past the set's size were not counted. */
  readonly full: readonly string[]
  /** Connections counted under a key no counting rule of the policy matches (iptables). */
  readonly unattributed?: number
  /** Counting sets not read this time (the kernel refused the swap): read the next time. */
  readonly unread?: readonly string[]
}

/**
 * `-p`: protocols as numbers. By name, nft prints what /etc/protocols calls them (`vrrp`,
 * `ospf`), which a policy may allow and no parser can know all of.
 */
const listSet = (run: Runner, name: string) =>
  runChecked(run, 'nft', ['-j', '-p', 'list', 'set', 'inet', NFT_TABLE, name])

/**
 * Reads what our counting rules counted since the last read (nftables): flips the live
 * generation (in two steps, see `renderNftFlip`), then lists and flushes the sets no packet
 * writes to any more. The read sets are flushed even when a listing fails or cannot be parsed:
 * kept, they would go live again full at the next flip, and every later read would meet the
 * same listing.
 */
export async function readKernelCounts(run: Runner): Promise<KernelCounts> {
  const aLive = parseNftGenerationLive(await listSet(run, flowGenerationSet('a')))
  const old = aLive ? 'a' : 'b'
  for (const step of renderNftFlip(aLive ? 'b' : 'a'))
    await runChecked(run, 'nft', ['-f', '-'], { stdin: step })
  const entries: FlowCountEntry[] = []
  const full: string[] = []
  try {
    for (const family of [4, 6] as const) {
      const name = flowCountSet(family, old)
      const read = parseNftFlowCounts(await listSet(run, name))
      entries.push(...read.entries)
      if (read.full) full.push(name)
    }
  } finally {
    await runChecked(run, 'nft', ['-f', '-'], { stdin: renderNftCountFlush(old) })
  }
  return { entries, full }
}

/**
 * Reads what our counting chains counted since the last read (iptables, see
 * flow-count-ipset.ts), in one shell run (renderIpsetCountRead): each counting set swapped with
 * its empty spare (`ipset swap`, atomic), the spare listed and emptied. Which rule counted each
 * key is found from `desired`, the state whose rules counted. A set the kernel would not swap
 * keeps its counts for the next read (`unread`).
 */
export async function readIpsetCounts(run: Runner, desired: Desired): Promise<KernelCounts> {
  const pairs = countIpsetPairs(desired)
  if (pairs.length === 0) return { entries: [], full: [] }
  const out = await runChecked(run, 'sh', ['-c', renderIpsetCountRead(pairs)])
  const read = parseIpsetCountRead(out, pairs)
  const tagOf = ipsetCountTagger(desired)
  const entries: FlowCountEntry[] = []
  let unattributed = 0
  for (const c of read.counts) {
    const tag = tagOf(c)
    if (tag === undefined) unattributed += c.connections
    else
      entries.push({
        src: c.src,
        dst: c.dst,
        proto: c.proto,
        port: c.port,
        tag,
        connections: c.connections,
      })
  }
  return {
    entries,
    full: read.full,
    ...(unattributed > 0 && { unattributed }),
    ...(read.unread.length > 0 && { unread: read.unread }),
  }
}
