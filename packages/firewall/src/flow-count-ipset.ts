import type { Direction } from '@palisade/model'
import { cidrContains, normaliseCidr } from '@palisade/model'
import type { FlowCountEntry } from './flow-count.js'
import { FLOW_COUNT_SET_SIZE, FLOW_COUNTED_LABEL } from './flow-count.js'
import type { Desired } from './ours.js'
import { IPSET_PREFIX, IPT_PREFIX, ourIptablesChain } from './ours.js'
import { ourIpsetName } from './render-grammar.js'
import { RulesetParseError } from './parse-error.js'
import { protoNumber } from './protocols.js'
import type { Chain, IpFamily, Match, NamedSet } from './ruleset.js'

/**
 * Counting allowed connections in the kernel on iptables (both variants), as nftables does with
 * its dynamic sets (flow-count.ts): a rule that allows a connection is preceded by a jump, with
 * the same matches, into the counting chain of its direction. That chain counts the
 * connection's first packet into an ipset of type `hash:ip,port,ip` with counters, keyed by
 * source, protocol and destination port, and destination. The reader swaps each set with an
 * empty spare (`ipset swap`, atomic), lists the spare and empties it, once per flows interval.
 *
 * The chain, in order: a connection conntrack has confirmed, or one already counted (conntrack
 * label `FLOW_COUNTED_LABEL`), returns; so does a TCP packet that is not a SYN (conntrack picks
 * up a connection it did not see begin from any packet). Then the connection is marked counted,
 * counted if its key is in the set (`-m set` updates the element's counter), and otherwise added
 * with a count of 1. The mark makes a packet that meets two counting jumps count once.
 *
 * The key has no room for the rule: which rule counted a key is found from the desired state,
 * as the first counting jump of the direction's chain whose matches the key meets (a packet
 * counted by a later one would have been counted by that one first). Only protocols with ports
 * are counted (ipset prints ICMP types by names of its own); other allowed traffic is logged.
 */

/** TCP, UDP and SCTP: the protocols whose keys hold a port. */
const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132])

/** Whether connections of protocol `proto` can be counted in an ipset (else they are logged). */
export const ipsetCountsProtocol = (proto: number): boolean => PORT_PROTOCOLS.has(proto)

const SHORT: Readonly<Record<Direction, 'in' | 'out'>> = { inbound: 'in', outbound: 'out' }

/** The counting chain of a direction (in both families' filter tables). */
export const countChain = (d: Direction): string => `${IPT_PREFIX}COUNT-${SHORT[d].toUpperCase()}`

/** The set a family's counting chain of a direction counts into, or (`spare`) the reader's. */
export const countIpset = (family: IpFamily, d: Direction, spare = false): string =>
  `${IPSET_PREFIX}flows${family}-${SHORT[d]}${spare ? '-read' : ''}`

const DIRECTIONS: readonly Direction[] = ['inbound', 'outbound']

const COUNT_IPSET_NAME = `${IPSET_PREFIX}flows[46]-(?:in|out)(?:-read)?`
const COUNT_IPSET = new RegExp(`^${COUNT_IPSET_NAME}$`)
const COUNT_MEMBER = new RegExp(`^add ${COUNT_IPSET_NAME} .*\\n?`, 'gm')

/** Whether an ipset's name is one of our counting sets' (for listings that give names only). */
export const isCountIpset = (name: string): boolean => COUNT_IPSET.test(name)

/**
 * `ipset save` without our counting sets' members: they change with every connection and are
 * never compared, so a listing that differs only in them is the same to a drift check.
 */
export const withoutCountMembers = (save: string): string => save.replace(COUNT_MEMBER, '')

/** The rules of a counting chain after `-A CHAIN`, exactly as iptables-save prints them. */
export function countChainSpecs(set: string): string[] {
  const label = `--label "${FLOW_COUNTED_LABEL}"`
  return [
    '-m conntrack --ctstatus CONFIRMED -j RETURN',
    `-m connlabel ${label} -j RETURN`,
    '-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j RETURN',
    `-m connlabel ${label} --set`,
    `-m set --match-set ${set} src,dst,dst -j RETURN`,
    `-j SET --add-set ${set} src,dst,dst`,
  ]
}

/**
 * The set a chain read back counts into, if it is one of our counting chains holding exactly
 * the rules we write (as their text): anything else reads as the rules it holds.
 */
export function countingChainSet(
  family: IpFamily,
  chain: string,
  texts: readonly (string | undefined)[],
): string | undefined {
  const d = DIRECTIONS.find((x) => countChain(x) === chain)
  if (!d) return undefined
  const set = countIpset(family, d)
  const specs = countChainSpecs(set)
  return texts.length === specs.length && specs.every((s, i) => texts[i] === s) ? set : undefined
}

/** The counting chains and sets of one family's table, whose rules jump to count. */
export function countingObjects(family: IpFamily): { chains: Chain[]; sets: NamedSet[] } {
  return {
    chains: DIRECTIONS.map((d) => ({
      name: countChain(d),
      rules: [],
      countsInto: countIpset(family, d),
    })),
    sets: DIRECTIONS.flatMap((d) =>
      [false, true].map((spare) => ({
        name: countIpset(family, d, spare),
        family,
        elements: [],
        counts: true as const,
      })),
    ),
  }
}

/** `ipset restore` input creating a counting set where it is missing; never emptying one. */
export const renderCountIpsetCreate = (s: NamedSet): string =>
  `create ${s.name} hash:ip,port,ip family ${s.family === 4 ? 'inet' : 'inet6'} counters maxelem ${FLOW_COUNT_SET_SIZE} -exist`

/** The live counting sets of `desired`, each with its spare. */
export function countIpsetPairs(
  desired: Desired,
): { family: IpFamily; direction: Direction; live: string; spare: string }[] {
  const have = new Set(desired.ipsets.filter((s) => s.counts).map((s) => s.name))
  return ([4, 6] as const).flatMap((family) =>
    DIRECTIONS.flatMap((direction) => {
      const live = countIpset(family, direction)
      const spare = countIpset(family, direction, true)
      return have.has(live) && have.has(spare) ? [{ family, direction, live, spare }] : []
    }),
  )
}

export type CountIpsetPair = ReturnType<typeof countIpsetPairs>[number]

/** How often a swap the kernel refuses (a listing of the set under way) is tried. */
const SWAP_TRIES = 3
const SWAPPED = '#palisade-swapped '

/**
 * The shell script (`sh -c`) that reads the counting sets in one process: starting a tool from
 * the agent costs more than the tool's work (9 runs took 165 ms with no key counted). For each
 * set: swap it with its spare, tried again while the kernel refuses (it does while the set is
 * being listed: a legacy host's poll, a full read); then, if swapped, say so, list the spare and
 * empty it once listed. A set never swapped, or a spare that could not be listed, keeps its
 * counts for a later read (the spare goes live again with the next swap). The names are ours (a
 * fixed pattern), never the host's.
 */
export function renderIpsetCountRead(pairs: readonly CountIpsetPair[]): string {
  return pairs
    .map(({ live, spare }) => {
      const [l, s] = [ourIpsetName('counting set', live), ourIpsetName('counting set', spare)]
      return `n=0; until ipset swap ${l} ${s} 2>/dev/null; do n=$((n+1)); [ $n -ge ${SWAP_TRIES} ] && break; sleep 0.02; done; [ $n -lt ${SWAP_TRIES} ] && { echo '${SWAPPED}${l}'; ipset save ${s} && ipset flush ${s}; }`
    })
    .concat('true')
    .join('\n')
}

/**
 * What renderIpsetCountRead's run printed: the counts of the sets it swapped, and the sets it
 * could not swap (read the next time).
 */
export function parseIpsetCountRead(
  text: string,
  pairs: readonly CountIpsetPair[],
): { counts: IpsetCount[]; full: string[]; unread: string[] } {
  const swapped = new Set(
    text
      .split('\n')
      .filter((l) => l.startsWith(SWAPPED))
      .map((l) => l.slice(SWAPPED.length).trim()),
  )
  const read = pairs.filter((p) => swapped.has(p.live))
  const listing = text
    .split('\n')
    .filter((l) => !l.startsWith(SWAPPED))
    .join('\n')
  return {
    ...parseIpsetCounts(listing, new Map(read.map((p) => [p.spare, p]))),
    unread: pairs.filter((p) => !swapped.has(p.live)).map((p) => p.live),
  }
}

/** One key of a counting set and the connections counted under it, with its direction. */
export interface IpsetCount extends Omit<FlowCountEntry, 'tag'> {
  readonly family: IpFamily
  readonly direction: Direction
}

/**
 * Parses `ipset save` of spare counting sets (`add SET SRC,PROTO:PORT,DST packets N bytes M`)
 * into counts; `sets` says each set's family and direction. Lines of other sets are an error:
 * the listing was asked for these alone.
 */
export function parseIpsetCounts(
  text: string,
  sets: ReadonlyMap<string, { family: IpFamily; direction: Direction }>,
): { counts: IpsetCount[]; full: string[] } {
  const counts: IpsetCount[] = []
  const sizes = new Map<string, number>()
  for (const [n, line] of text.split('\n').entries()) {
    const parts = line.trim().split(/\s+/)
    if (parts[0] === undefined || parts[0] === '' || parts[0] === 'create') continue
    const where = sets.get(parts[1] ?? '')
    const bad = (why: string) =>
      new RulesetParseError(
        'ipset save (flow counts)',
        `line ${n + 1}: ${why}: "${line.slice(0, 120)}"`,
      )
    if (parts[0] !== 'add' || !where) throw bad('not an element of a counting set')
    // ipset names the protocol as /etc/protocols does, by number where that has no entry
    const m = /^([^,]+),([a-z]+|\d+):(\d+),([^,]+)$/.exec(parts[2] ?? '')
    const proto = m?.[2] !== undefined ? protoNumber(m[2]) : undefined
    const packets = parts[3] === 'packets' ? Number(parts[4]) : NaN
    if (!m?.[1] || !m[4] || proto === undefined || !PORT_PROTOCOLS.has(proto))
      throw bad('unexpected element')
    if (!Number.isInteger(packets)) throw bad('unexpected element')
    sizes.set(parts[1] ?? '', (sizes.get(parts[1] ?? '') ?? 0) + 1)
    if (packets === 0) continue
    counts.push({
      ...where,
      src: m[1],
      dst: m[4],
      proto,
      port: Number(m[3]),
      connections: packets,
    })
  }
  const full = [...sizes].filter(([, n]) => n >= FLOW_COUNT_SET_SIZE).map(([name]) => name)
  return { counts, full }
}

/** A set's addresses for lookups: single addresses by value, prefixes to test one by one. */
function addressIndex(s: NamedSet): { one: Set<string>; nets: string[] } {
  const full = s.family === 4 ? '/32' : '/128'
  const one = new Set<string>()
  const nets: string[] = []
  for (const e of s.elements) {
    if (e.endsWith(full)) one.add(e)
    else nets.push(e)
  }
  return { one, nets }
}

/** Taggers by the state they read: a state counts for many intervals. */
const TAGGERS = new WeakMap<Desired, (c: IpsetCount) => number | undefined>()

/**
 * Which rule counted each key, for the counts of `desired`'s counting chains: the tag of the
 * first counting jump of the direction's chain whose matches the key meets. A match the key
 * cannot tell (an interface, a source port) is taken as met: the key was counted by a jump.
 * Protocols and ports are tested before addresses, and a key's addresses are normalised once.
 */
export function ipsetCountTagger(desired: Desired): (c: IpsetCount) => number | undefined {
  const known = TAGGERS.get(desired)
  if (known) return known
  const sets = new Map(desired.ipsets.map((s) => [s.name, addressIndex(s)]))
  const jumps = new Map<string, { matches: readonly Match[]; tag: number }[]>()
  const cheapFirst = (m: Match) => (m.kind === 'addr' ? 1 : 0)
  for (const t of desired.tables)
    for (const d of DIRECTIONS) {
      const chain = t.chains.find(
        (c) => c.name === ourIptablesChain(d === 'inbound' ? 'INPUT' : 'OUTPUT'),
      )
      const list = (chain?.rules ?? []).flatMap((r) =>
        r.countTag !== undefined && r.verdict?.kind === 'jump' && r.verdict.target === countChain(d)
          ? [
              {
                matches: [...r.matches].sort((a, b) => cheapFirst(a) - cheapFirst(b)),
                tag: r.countTag,
              },
            ]
          : [],
      )
      jumps.set(`${t.family === 'ip' ? 4 : 6} ${d}`, list)
    }
  const tagger = (c: IpsetCount): number | undefined => {
    const bits = c.family === 4 ? 32 : 128
    const one = { src: normaliseCidr(`${c.src}/${bits}`), dst: normaliseCidr(`${c.dst}/${bits}`) }
    const addressMeets = (m: Extract<Match, { kind: 'addr' }>): boolean => {
      const address = m.dir === 'src' ? c.src : c.dst
      const index = m.set !== undefined ? sets.get(m.set) : undefined
      const held =
        m.set !== undefined
          ? !!index &&
            (index.one.has(one[m.dir]) || index.nets.some((n) => cidrContains(n, address)))
          : (m.cidrs ?? []).some((n) => cidrContains(n, address))
      return m.negate ? !held : held
    }
    const meets = (m: Match): boolean => {
      switch (m.kind) {
        case 'addr':
          return m.family !== c.family ? m.negate === true : addressMeets(m)
        case 'proto':
          return (m.proto === c.proto) !== (m.negate === true)
        case 'port':
          if (m.proto !== c.proto) return false
          if (m.dir === 'src') return true
          return m.ranges.some(([a, b]) => c.port >= a && c.port <= b) !== (m.negate === true)
        case 'nfproto':
          return m.family === c.family
        case 'icmp':
        case 'addr_port':
          return false
        default:
          return true
      }
    }
    return jumps.get(`${c.family} ${c.direction}`)?.find((j) => j.matches.every(meets))?.tag
  }
  TAGGERS.set(desired, tagger)
  return tagger
}
