/**
 * The one intermediate form for netfilter state, ours and foreign: what the compiler renders,
 * and what the parsers read back from `nft -j`, `iptables-save` and `ipset save`.
 */

export type IpFamily = 4 | 6
export type TableFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev'
/** Which tool owns a table, so it is read (and written) with that tool. */
export type TableSource = 'nft' | 'iptables-nft' | 'iptables-legacy'
export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress'
export type CtState = 'established' | 'related' | 'new' | 'invalid' | 'untracked'

export type Match =
  | { readonly kind: 'ct_state'; readonly states: readonly CtState[] }
  | { readonly kind: 'nfproto'; readonly family: IpFamily }
  | {
      readonly kind: 'iface'
      readonly dir: 'in' | 'out'
      readonly name: string
      readonly negate?: boolean
    }
  | {
      readonly kind: 'addr'
      readonly dir: 'src' | 'dst'
      readonly family: IpFamily
      /** A named set (nft set or ipset) ... */
      readonly set?: string
      /** ... or literal CIDRs. */
      readonly cidrs?: readonly string[]
      readonly negate?: boolean
    }
  | { readonly kind: 'proto'; readonly proto: number; readonly negate?: boolean }
  | {
      readonly kind: 'port'
      /** The transport the port belongs to (6 TCP, 17 UDP); a port match implies it. */
      readonly proto: number
      readonly dir: 'src' | 'dst'
      readonly ranges: readonly (readonly [number, number])[]
      readonly negate?: boolean
    }
  | {
      readonly kind: 'icmp'
      readonly family: IpFamily
      readonly type: number
      readonly code?: number
    }
  /** An address and a port together, looked up in a concatenated set (`ip daddr . tcp dport @s`). */
  | {
      readonly kind: 'addr_port'
      readonly dir: 'src' | 'dst'
      readonly family: IpFamily
      readonly proto: number
      readonly set: string
    }
  /** Something we do not model: treated as "may or may not match". */
  | { readonly kind: 'opaque'; readonly text: string }

export type Verdict =
  | { readonly kind: 'accept' | 'drop' | 'reject' | 'return' }
  | { readonly kind: 'jump' | 'goto'; readonly target: string }
  /** A verdict we do not model (e.g. a foreign target such as MASQUERADE or a log). */
  | { readonly kind: 'opaque'; readonly text: string }

/** A copy of the packet to a netlink log group (nft `log group`, iptables `NFLOG`). */
export interface RuleLog {
  readonly group: number
  readonly prefix: string
  /** Bytes of the packet copied: enough for the IP and transport headers. */
  readonly snaplen: number
  /** Packets the kernel queues before it sends them; 1 sends each at once. */
  readonly threshold: number
}

/**
 * A connection's first packet counted into a kernel set (nftables `update @flows4_a { key }`),
 * keyed by source, destination, protocol, destination port and `tag`. Only a packet conntrack
 * has not yet confirmed counts (and, with `syn`, only a TCP SYN); only while the generation's
 * switch set holds the packet's family (see flow-count.ts).
 */
export interface FlowCount {
  readonly family: IpFamily
  readonly generation: 'a' | 'b'
  /** 32 bits naming the decision, direction and rule (flowCountTag). */
  readonly tag: number
  readonly syn: boolean
}

export interface Rule {
  readonly matches: readonly Match[]
  /** null: no verdict, evaluation continues with the next rule. */
  readonly verdict: Verdict | null
  readonly log?: RuleLog
  readonly count?: FlowCount
  /**
   * iptables: the tag (flowCountTag) of the rule whose connections this jump into a counting
   * chain counts. The kernel's key has no room for it: it is known from the desired state only,
   * never read back, and not part of the rule's body.
   */
  readonly countTag?: number
  readonly comment?: string
  readonly counter?: { readonly packets: number; readonly bytes: number }
  /** The rule as the tool printed it, for messages and for deleting a foreign rule by spec. */
  readonly text?: string
}

export interface BaseChain {
  readonly type: string
  readonly hook: Hook
  readonly priority: number
  readonly policy: 'accept' | 'drop'
}

export interface Chain {
  readonly name: string
  readonly base?: BaseChain
  readonly rules: readonly Rule[]
  /**
   * iptables: a counting chain, which counts each connection it is jumped to with into this
   * ipset (see flow-count-ipset.ts). Its rules are fixed: written and read back as one text, and
   * `rules` is then empty.
   */
  readonly countsInto?: string
}

export interface NamedSet {
  readonly name: string
  readonly family: IpFamily
  /** Normalised CIDRs (see model's AddressSet), or `ADDR . PORT` pairs for a port set. */
  readonly elements: readonly string[]
  /**
   * A set our counting chains count connections into (ipset `hash:ip,port,ip` with counters):
   * its members are the kernel's counts, never written by an apply nor compared.
   */
  readonly counts?: true
  /** A concatenated address-and-port set (nftables `ipv4_addr . inet_service`). */
  readonly withPort?: true
  /**
   * Single addresses only (every element a /32 or /128): an nftables set without the interval
   * flag, which nft changes one element at a time without reading the whole set first.
   */
  readonly exact?: true
}

export interface Table {
  readonly family: TableFamily
  readonly name: string
  readonly source: TableSource
  readonly chains: readonly Chain[]
  readonly sets: readonly NamedSet[]
  /**
   * The sets our rules count flows into, and their generation switches (nftables), by name:
   * declared by us, their elements written by the kernel and the flow reader, never compared.
   */
  readonly counters?: readonly string[]
}

/** Everything netfilter holds in one network namespace, as far as we read it. */
export interface Ruleset {
  readonly tables: readonly Table[]
  /** ipsets live outside tables; iptables rules refer to them by name. */
  readonly ipsets: readonly NamedSet[]
  /**
   * Set contents were not read (a terse listing, far cheaper for large sets): sets are known to
   * exist, their elements are not known and must not be compared.
   */
  readonly elementsOmitted?: boolean
}

export const EMPTY_RULESET: Ruleset = Object.freeze({ tables: [], ipsets: [] })

const MATCH_ORDER: Record<Match['kind'], number> = {
  ct_state: 0,
  nfproto: 1,
  iface: 2,
  addr: 3,
  proto: 4,
  port: 5,
  icmp: 6,
  addr_port: 7,
  opaque: 8,
}

/**
 * Sorts matches into one canonical order, so that the same rule read from different tools
 * (which print matches in different orders) compares equal. Matches are ANDed: order is free.
 */
export function canonicalMatches(matches: readonly Match[]): Match[] {
  return [...matches].sort((a, b) => {
    const d = MATCH_ORDER[a.kind] - MATCH_ORDER[b.kind]
    if (d !== 0) return d
    return JSON.stringify(a) < JSON.stringify(b) ? -1 : 1
  })
}

/** The part of a rule that decides what it does: matches and verdict, without comment or counters. */
export function ruleBody(rule: Pick<Rule, 'matches' | 'verdict' | 'log' | 'count'>): string {
  return JSON.stringify({
    m: canonicalMatches(rule.matches),
    v: rule.verdict,
    ...(rule.log && { l: rule.log }),
    ...(rule.count && { c: rule.count }),
  })
}

export const tableKey = (t: Pick<Table, 'family' | 'name' | 'source'>) =>
  `${t.source}:${t.family}:${t.name}`

export function findTable(rs: Ruleset, source: TableSource, family: TableFamily, name: string) {
  return rs.tables.find((t) => t.source === source && t.family === family && t.name === name)
}
