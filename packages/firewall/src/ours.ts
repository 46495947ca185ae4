/**
 * The vocabulary of what Palisade owns in netfilter: the backends, the names of our table,
 * chains, sets and rule comments, the desired state, and the one family of tests that tell
 * ours from foreign. Every other module (and the agent) asks these, never the names directly.
 */
import type { CoexistenceMode } from '@palisade/model'
import type { NamedSet, Rule, Table } from './ruleset.js'

export const BACKENDS = ['nftables', 'iptables-nft', 'iptables-legacy'] as const
export type Backend = (typeof BACKENDS)[number]

export const isIptables = (b: Backend): boolean => b !== 'nftables'

/** Our nftables table: `table inet palisade`. */
export const NFT_TABLE = 'palisade'
/** Our iptables chains and ipsets share this prefix; nothing else of ours exists. */
export const IPT_PREFIX = 'PALISADE-'
export const IPSET_PREFIX = 'palisade-'
/** Every comment we write starts with this; anything else is foreign. */
export const COMMENT_PREFIX = 'palisade:'
/**
 * The table `--firewall-restore closed` leaves behind when the agent unpairs. It outlives the
 * agent, so it is not ours to manage: a later agent treats it as foreign.
 */
export const CLOSED_TABLE = 'palisade_closed'

export type BuiltinChain = 'INPUT' | 'OUTPUT' | 'FORWARD'
export const BUILTIN_CHAINS: readonly BuiltinChain[] = ['INPUT', 'OUTPUT', 'FORWARD']

/** The jump from a built-in iptables chain into ours. */
export interface HookRule {
  readonly family: 'ip' | 'ip6'
  readonly chain: BuiltinChain
  readonly rule: Rule
}

/** What we want the kernel to hold: only our own objects. */
export interface Desired {
  readonly backend: Backend
  readonly version: number
  readonly mode: CoexistenceMode
  /** Whether our hooks must stay first (exclusive, primary) or go last when placed. */
  readonly hookPosition: 'first' | 'last'
  /** nftables: `inet palisade`. iptables: the `filter` tables, holding only our chains. */
  readonly tables: readonly Table[]
  readonly hooks: readonly HookRule[]
  readonly ipsets: readonly NamedSet[]
}

type TableId = Pick<Table, 'source' | 'family' | 'name'>

/** Our iptables chain for a built-in one: `PALISADE-INPUT` for `INPUT`. */
export const ourIptablesChain = (builtin: BuiltinChain): string => `${IPT_PREFIX}${builtin}`

/** The comment that marks a rule (or hook) of ours with its id. */
export const ourComment = (id: string): string => `${COMMENT_PREFIX}${id}`

/** `table inet palisade`, as nft lists it. */
export const isOurTable = (t: TableId): boolean =>
  t.source === 'nft' && t.family === 'inet' && t.name === NFT_TABLE

/** Every chain of our nftables table; a `PALISADE-*` chain of an iptables table. */
export const isOurChain = (t: TableId, chain: string): boolean =>
  isOurTable(t) || (t.source !== 'nft' && chain.startsWith(IPT_PREFIX))

/** An ipset of ours (nftables sets live in our table, and are ours with it). */
export const isOurIpset = (name: string): boolean => name.startsWith(IPSET_PREFIX)

/** A comment we wrote: every rule of ours, and every hook, carries one. */
export const isOurComment = (comment: string | undefined): boolean =>
  comment?.startsWith(COMMENT_PREFIX) ?? false

/** A jump into one of our iptables chains: in a built-in chain, our hook. */
export function isHookIntoOurs(t: TableId, r: Pick<Rule, 'verdict'>): boolean {
  const v = r.verdict
  return (
    !isOurTable(t) && !!v && (v.kind === 'jump' || v.kind === 'goto') && isOurChain(t, v.target)
  )
}
