/**
 * The foreign rules the lab adds, as plain data (no imports): what `addForeignRules` writes and
 * what the coexistence oracle reads.
 */

/** Where a foreign rule stands relative to ours. */
export type Placement = 'before' | 'after' | 'nft-lower' | 'nft-higher'
export const PLACEMENTS: readonly Placement[] = ['before', 'after', 'nft-lower', 'nft-higher']
/**
 * `reject` answers as firewalld does, "administratively prohibited", never "port unreachable"
 * as our own reject does: a probe tells whose reject it met.
 */
export type ForeignVerdict = 'accept' | 'drop' | 'reject' | 'none'
export const FOREIGN_VERDICTS: readonly ForeignVerdict[] = ['accept', 'drop', 'reject', 'none']

export interface ForeignRule {
  readonly placement: Placement
  readonly proto: 'tcp' | 'udp'
  readonly port: number
  readonly verdict: ForeignVerdict
}

/** Priorities of the foreign nftables tables: below and above every priority we use. */
export const FOREIGN_PRIORITY = { lower: -160, higher: 30 } as const
