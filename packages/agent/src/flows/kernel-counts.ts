import type { FlowCountEntry } from '@palisade/firewall'
import {
  flowCountSet,
  flowGenerationSet,
  NFT_TABLE,
  parseNftFlowCounts,
  parseNftGenerationLive,
  renderNftCountFlush,
  renderNftFlip,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'

export interface KernelCounts {
  readonly entries: readonly FlowCountEntry[]
  /** Count sets that were full: connections past the set's size were not counted. */
  readonly full: readonly string[]
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
