import type { Desired, FlowCountEntry } from '@palisade/firewall'
import {
  countIpsetPairs,
  flowCountSet,
  ipsetCountTagger,
  parseIpsetCounts,
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

/** A swap the kernel refused (a listing of the set under way) is tried again this often. */
const SWAP_TRIES = 3
const SWAP_RETRY_MS = 20

/**
 * Reads what our counting chains counted since the last read (iptables, see
 * flow-count-ipset.ts): swaps each counting set with its empty spare (`ipset swap`, atomic),
 * then lists and empties the spares, which no rule writes to. Which rule counted each key is
 * found from `desired`, the state whose rules counted. The kernel refuses a swap while the set
 * is being listed (the legacy poller's headers, a full read): it is tried again, and a set still
 * refused keeps its counts for the next read (`unread`). The spares read are emptied even when
 * a listing fails, as for nftables.
 */
export async function readIpsetCounts(run: Runner, desired: Desired): Promise<KernelCounts> {
  const pairs: ReturnType<typeof countIpsetPairs> = []
  const unread: string[] = []
  for (const p of countIpsetPairs(desired)) {
    if (await swapped(run, p.live, p.spare)) pairs.push(p)
    else unread.push(p.live)
  }
  const withUnread = unread.length > 0 ? { unread } : {}
  if (pairs.length === 0) return { entries: [], full: [], ...withUnread }
  try {
    const listings = await Promise.all(
      pairs.map((p) => runChecked(run, 'ipset', ['save', p.spare])),
    )
    const read = parseIpsetCounts(listings.join('\n'), new Map(pairs.map((p) => [p.spare, p])))
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
    return { entries, full: read.full, ...(unattributed > 0 && { unattributed }), ...withUnread }
  } finally {
    await runChecked(run, 'ipset', ['restore'], {
      stdin: pairs.map((p) => `flush ${p.spare}\n`).join(''),
    })
  }
}

async function swapped(run: Runner, live: string, spare: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    if ((await run('ipset', ['swap', live, spare])).code === 0) return true
    if (attempt === SWAP_TRIES) return false
    await new Promise((r) => setTimeout(r, SWAP_RETRY_MS))
  }
}
