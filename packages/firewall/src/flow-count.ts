import type { Direction } from '@palisade/model'
import type { FlowLogTag } from './flow-log.js'
import { encodeFlowLogPrefix, ruleLogKey } from './flow-log.js'
import { isOurChain, isOurTable, NFT_TABLE } from './ours.js'
import { RulesetParseError } from './parse-error.js'
import { oneOf, u32 } from './render-grammar.js'
import { protoNumber } from './protocols.js'
import type { FlowCount, IpFamily, Match, Rule, Ruleset } from './ruleset.js'

/**
 * Counting allowed connections in the kernel (nftables): each counting rule adds its
 * connection's first packet to a dynamic set with per-element counters, keyed by source,
 * destination, protocol, destination port (for ICMP its type and code) and a 32-bit tag naming
 * decision, direction and rule. A new connection then costs no userspace work; the agent reads
 * the sets once per flows interval.
 *
 * Each counting rule comes twice, one copy per generation, live only while the generation's
 * switch set holds the packet's family: the reader makes the next generation live, then the old
 * one dead (two transactions), then lists and flushes the sets nothing writes to any more, so no
 * count falls between a read and a flush (nft 1.0.6 has no `reset element`). A connection is
 * counted once: the rule that counts it marks its conntrack entry with `FLOW_COUNTED_LABEL`, and
 * no counting rule takes a marked one. A packet meets the two copies one after the other, and a
 * flip committed between them would otherwise count it in both generations (or, one transaction
 * flipping both ways at once, in neither): while both are live it counts in the first.
 */

export type Generation = FlowCount['generation']
export const GENERATIONS: readonly Generation[] = ['a', 'b']

/**
 * The conntrack label bit that marks a connection as counted: the highest of the 128, which
 * labels named in /etc/connlabel.conf fill from the lowest.
 */
export const FLOW_COUNTED_LABEL = 127

/**
 * The name a connlabel.conf (`/etc/connlabel.conf`, lines of `bit name`) gives conntrack label
 * `bit`, if any: nft then prints that name in place of the number, so a rule of ours that tests
 * or sets the label would never read back as written.
 */
export function connlabelName(conf: string, bit: number): string | undefined {
  for (const line of conf.split('\n')) {
    const m = /^\s*(0x[0-9a-f]+|0[0-7]*|[1-9]\d*)\s+(\S+)/i.exec(line.replace(/#.*/, ''))
    if (!m?.[1]) continue
    // nft reads the number as C's %i does: 0x for hexadecimal, a leading 0 for octal
    const n = /^0[0-7]+$/.test(m[1]) ? parseInt(m[1], 8) : Number(m[1])
    if (n === bit) return m[2]
  }
  return undefined
}

/** Distinct keys one set holds per interval; past it a key is not counted (the status says). */
export const FLOW_COUNT_SET_SIZE = 262_144

export const flowGenerationSet = (g: Generation) => `flow_gen_${g}`
export const flowCountSet = (family: IpFamily, g: Generation) => `flows${family}_${g}`

/** Every counting set and switch, by name: what a table that counts declares. */
export const FLOW_COUNTERS: readonly string[] = GENERATIONS.flatMap((g) => [
  flowGenerationSet(g),
  flowCountSet(4, g),
  flowCountSet(6, g),
])

/** The tag of an allowed connection's rule: 32 bits of the hash of its log prefix. */
export function flowCountTag(direction: Direction, hostRuleKey: string): number {
  const prefix = encodeFlowLogPrefix('allowed', direction, hostRuleKey)
  let h = 0x811c9dc5
  // FNV-1a: stable, and a collision between two rules of one host is a 1 in 2^32 chance.
  for (let i = 0; i < prefix.length; i++) h = Math.imul(h ^ prefix.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** What each tag of a policy's rules stands for. */
export function flowCountTags(
  rules: readonly { readonly key: string; readonly direction: Direction }[],
): Map<number, FlowLogTag> {
  return new Map(
    rules.map((r) => [
      flowCountTag(r.direction, r.key),
      { decision: 'allowed', direction: r.direction, ruleLogKey: ruleLogKey(r.key) },
    ]),
  )
}

/**
 * The one protocol a rule's matches pin, which the key's destination port needs (nft cannot
 * type `ct original proto-dst` otherwise); undefined when they pin none.
 */
export function countedProtocol(matches: readonly Match[]): number | undefined {
  for (const m of matches) {
    if (m.kind === 'port' || m.kind === 'addr_port' || (m.kind === 'proto' && !m.negate))
      return m.proto
    if (m.kind === 'icmp') return m.family === 4 ? 1 : 58
  }
  return undefined
}

function familiesOf(matches: readonly Match[]): IpFamily[] {
  for (const m of matches)
    if (m.kind === 'addr' || m.kind === 'icmp' || m.kind === 'nfproto' || m.kind === 'addr_port')
      return [m.family]
  return [4, 6]
}

/**
 * The counting rules placed before the rule that allows `matches`: per family and generation.
 * A TCP connection counts on its SYN only (conntrack also picks up a connection it did not see
 * begin, from any packet, unconfirmed); the SYN test implies TCP, and nft lists such a rule
 * without its protocol match, so it is left out here too.
 */
export function countingRules(matches: readonly Match[], tag: number): Rule[] {
  const proto = countedProtocol(matches)
  if (proto === undefined) return []
  const syn = proto === 6
  const own = syn ? matches.filter((m) => !(m.kind === 'proto' && m.proto === 6)) : matches
  return familiesOf(matches).flatMap((family) =>
    GENERATIONS.map((generation) => ({
      matches: own,
      verdict: null,
      count: { family, generation, tag, syn },
    })),
  )
}

/** The statements that follow a counting rule's matches (before its comment). */
export function renderNftCount(c: FlowCount): { before: string; after: string } {
  const family = oneOf('count family', c.family, [4, 6] as const)
  const generation = oneOf('count generation', c.generation, GENERATIONS)
  const ip = family === 4 ? 'ip' : 'ip6'
  const tag = `0x${Number(u32('count tag', c.tag)).toString(16).padStart(8, '0')}`
  return {
    before: [
      'ct status != confirmed',
      ...(c.syn === true ? ['tcp flags & (syn | ack) == syn'] : []),
      `ct label ! ${FLOW_COUNTED_LABEL}`,
      `meta nfproto @${flowGenerationSet(generation)}`,
    ].join(' '),
    after: `update @${flowCountSet(family, generation)} { ${ip} saddr . ${ip} daddr . meta l4proto . ct original proto-dst . ${tag} } ct label set ${FLOW_COUNTED_LABEL}`,
  }
}

/** The declarations of the counting sets in our table; generation a starts live. */
export function renderNftCounterSets(): string[] {
  return GENERATIONS.flatMap((g) => [
    `  set ${flowGenerationSet(g)} { type nf_proto;${g === 'a' ? ' elements = { ipv4, ipv6 };' : ''} }`,
    ...([4, 6] as const).map(
      (f) =>
        `  set ${flowCountSet(f, g)} { type ipv${f}_addr . ipv${f}_addr . inet_proto . inet_service . mark; flags dynamic; size ${FLOW_COUNT_SET_SIZE}; counter; }`,
    ),
  ])
}

/**
 * Makes `next` the live generation, as two transactions to run one after the other: the first
 * makes both live (a packet then counts in the first copy it meets), the second the old one
 * dead. Flushing the old switch (rather than deleting its elements) also works when someone
 * emptied both.
 */
export function renderNftFlip(next: Generation): readonly [string, string] {
  const old = next === 'a' ? 'b' : 'a'
  return [
    `add element inet ${NFT_TABLE} ${flowGenerationSet(next)} { ipv4, ipv6 }\n`,
    `flush set inet ${NFT_TABLE} ${flowGenerationSet(old)}\n`,
  ]
}

/** Empties a generation's count sets once they are read. */
export const renderNftCountFlush = (g: Generation): string =>
  ([4, 6] as const).map((f) => `flush set inet ${NFT_TABLE} ${flowCountSet(f, g)}\n`).join('')

const COUNTER_CHANGE = new RegExp(
  `^(?:(?:add|delete) element|flush set) inet ${NFT_TABLE} (?:flow_gen_[ab]|flows[46]_[ab])(?= |$)`,
)

/**
 * Whether an `nft monitor` line is only the flow reader's work on the counting sets (flipping
 * the generation, emptying a read set): not desired state, so never a change to look into.
 */
export const isFlowCountChange = (line: string): boolean => COUNTER_CHANGE.test(line)

type Json = unknown
const isObj = (x: Json): x is Record<string, Json> =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

function setOf(text: string, what: string): Record<string, Json> {
  let doc: Json
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new RulesetParseError(`nft -j list set (${what})`, `not JSON (${(e as Error).message})`)
  }
  const set =
    isObj(doc) && Array.isArray(doc.nftables)
      ? doc.nftables.map((o) => (isObj(o) && isObj(o.set) ? o.set : undefined)).find(Boolean)
      : undefined
  if (!set) throw new RulesetParseError(`nft -j list set (${what})`, 'no set in the listing')
  return set
}

/** Whether a `mangle` statement as nft lists it is `ct label set FLOW_COUNTED_LABEL`. */
export function isCountedMark(mangle: Json): boolean {
  const ct = isObj(mangle) && isObj(mangle.key) && isObj(mangle.key.ct) ? mangle.key.ct : undefined
  return ct?.key === 'label' && isObj(mangle) && mangle.value === FLOW_COUNTED_LABEL
}

/** Whether a rule's expressions, as nft lists them, set the counted label. */
function setsCountedLabel(text: string | undefined): boolean {
  let expr: Json
  try {
    expr = JSON.parse(text ?? '[]')
  } catch {
    return false
  }
  return Array.isArray(expr) && expr.some((e) => isObj(e) && isCountedMark(e.mangle))
}

/** An iptables rule (as iptables-save prints it) that sets the counted label. */
const IPTABLES_SETS_LABEL = new RegExp(
  `-m connlabel (?:! )?--label "?${FLOW_COUNTED_LABEL}"? --set`,
)

/**
 * Whether a foreign rule (nftables, or iptables of either variant) sets the label our counting
 * marks with: a connection it marks first is neither counted nor logged (nothing of ours
 * changed, so no tampering shows), so counting is off while one does.
 */
export const foreignSetsCountedLabel = (rs: Ruleset): boolean =>
  rs.tables.some(
    (t) =>
      !isOurTable(t) &&
      t.chains.some(
        (c) =>
          !isOurChain(t, c.name) &&
          c.rules.some((r) =>
            t.source === 'nft' ? setsCountedLabel(r.text) : IPTABLES_SETS_LABEL.test(r.text ?? ''),
          ),
      ),
  )

/** Whether a generation switch (`nft -j list set ... flow_gen_a`) holds the families. */
export function parseNftGenerationLive(text: string): boolean {
  const set = setOf(text, 'generation')
  return Array.isArray(set.elem) && set.elem.includes('ipv4')
}

/** One key of a count set and the connections counted under it. */
export interface FlowCountEntry {
  readonly src: string
  readonly dst: string
  readonly proto: number
  /** The destination port; for ICMP, type * 256 + code (conntrack's `proto-dst`). */
  readonly port: number
  readonly tag: number
  readonly connections: number
}

/** A count set read back (`nft -j list set`): its keys with counts, and whether it is full. */
export function parseNftFlowCounts(text: string): { entries: FlowCountEntry[]; full: boolean } {
  const set = setOf(text, 'flow counts')
  const elems = Array.isArray(set.elem) ? set.elem : []
  const entries: FlowCountEntry[] = []
  for (const e of elems) {
    const inner = isObj(e) && isObj(e.elem) ? e.elem : undefined
    const parts = inner && isObj(inner.val) ? inner.val.concat : undefined
    const packets = inner && isObj(inner.counter) ? inner.counter.packets : undefined
    if (!Array.isArray(parts) || parts.length !== 5 || typeof packets !== 'number')
      throw new RulesetParseError(
        'nft -j list set (flow counts)',
        `unexpected element ${JSON.stringify(e)}`,
      )
    const [src, dst, p, port, tag] = parts as Json[]
    const proto = typeof p === 'number' ? p : protoNumber(String(p))
    if (
      typeof src !== 'string' ||
      typeof dst !== 'string' ||
      proto === undefined ||
      typeof port !== 'number' ||
      typeof tag !== 'number'
    )
      throw new RulesetParseError(
        'nft -j list set (flow counts)',
        `unexpected element ${JSON.stringify(e)}`,
      )
    // An element with no count was added by hand, not by a connection.
    if (packets > 0) entries.push({ src, dst, proto, port, tag, connections: packets })
  }
  const size = typeof set.size === 'number' ? set.size : FLOW_COUNT_SET_SIZE
  return { entries, full: elems.length >= size }
}
