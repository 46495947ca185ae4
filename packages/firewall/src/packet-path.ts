import { addrToBigInt, bigIntToAddr, cidrContains } from '@palisade/model'
import { isHookIntoOurs, isOurTable } from './ours.js'
import type {
  Chain,
  CtState,
  Hook,
  IpFamily,
  Match,
  NamedSet,
  Rule,
  Ruleset,
  Table,
} from './ruleset.js'
import { tableKey } from './ruleset.js'

/** A packet as netfilter sees it at the filter hooks. */
export interface Packet {
  /** in: prerouting then input; out: output then postrouting; forward: through the host. */
  readonly path: 'in' | 'out' | 'forward'
  readonly family: IpFamily
  readonly src: string
  readonly dst: string
  readonly proto: number
  readonly sport?: number
  readonly dport?: number
  readonly icmp?: { readonly type: number; readonly code: number }
  readonly iif?: string
  readonly oif?: string
  readonly ct: CtState
}

export type FinalVerdict = 'accept' | 'drop' | 'reject'

/** Where a rule stands: table, chain and index; `ours` when it belongs to us. */
export interface RuleRef {
  readonly table: string
  readonly chain: string
  readonly index: number
  readonly text: string
  readonly ours: boolean
}

/** One base chain the packet went through, and how that chain ended for it. */
export interface ChainStep {
  readonly table: string
  readonly chain: string
  readonly hook: Hook
  readonly priority: number
  readonly ours: boolean
  readonly outcome: FinalVerdict
  /** The rule that ended the chain, or none when the policy did. */
  readonly by?: RuleRef
}

export interface PathResult {
  readonly verdict: FinalVerdict
  /** The rule (or chain policy) that decided a drop; for an accept, the last chain's decider. */
  readonly decidedBy?: RuleRef
  /** Whether the packet entered one of our chains. */
  readonly sawUs: boolean
  /** What our chains did with it: pass (returned or accepted), drop or reject. */
  readonly ours?: 'pass' | 'drop' | 'reject'
  /** A rule we could not evaluate (opaque match, unknown set) was passed over as not matching. */
  readonly uncertain: boolean
  /** How many of our rules the packet was tested against: the per-packet cost of our policy. */
  readonly ourRulesEvaluated: number
  readonly steps: readonly ChainStep[]
}

const HOOKS_OF_PATH: Record<Packet['path'], readonly Hook[]> = {
  in: ['prerouting', 'input'],
  out: ['output', 'postrouting'],
  forward: ['prerouting', 'forward', 'postrouting'],
}
const MAX_DEPTH = 32

const familyCovers = (t: Table, f: IpFamily) =>
  t.family === 'inet' || (f === 4 ? t.family === 'ip' : t.family === 'ip6')

/**
 * ICMPv6 that conntrack never tracks (nf_conntrack_proto_icmpv6's noct_valid_new): MLD and
 * neighbour and router discovery reach the filter hooks `untracked`, never `established`.
 */
const UNTRACKED_ICMPV6: ReadonlySet<number> = new Set([130, 131, 132, 133, 134, 135, 136, 143])
/** The only ICMPv6 that can open a connection: echo and node information requests. */
const NEW_ICMPV6: ReadonlySet<number> = new Set([128, 139])

/**
 * The conntrack state the kernel gives a packet, where it does not depend on history: ICMPv6
 * discovery and MLD are untracked, and other ICMPv6 that would be new (a redirect, an error for
 * a connection conntrack does not know) is invalid. Otherwise the state the packet says.
 */
export function kernelCtState(p: Pick<Packet, 'family' | 'proto' | 'icmp' | 'ct'>): CtState {
  if (p.family !== 6 || p.proto !== 58 || !p.icmp) return p.ct
  if (UNTRACKED_ICMPV6.has(p.icmp.type)) return 'untracked'
  return p.ct === 'new' && !NEW_ICMPV6.has(p.icmp.type) ? 'invalid' : p.ct
}

/** The base chains a packet meets, in the order the kernel runs them. */
export function baseChainsFor(
  rs: Ruleset,
  p: Pick<Packet, 'path' | 'family'>,
): { table: Table; chain: Chain }[] {
  const hooks = HOOKS_OF_PATH[p.path]
  const out: { table: Table; chain: Chain }[] = []
  for (const table of rs.tables) {
    if (!familyCovers(table, p.family)) continue
    for (const chain of table.chains) {
      if (chain.base && chain.base.type !== 'nat' && hooks.includes(chain.base.hook))
        out.push({ table, chain })
    }
  }
  // Equal priorities run in an order the kernel does not define; we keep the listing order.
  return out.sort(
    (a, b) =>
      hooks.indexOf(a.chain.base?.hook ?? 'input') - hooks.indexOf(b.chain.base?.hook ?? 'input') ||
      (a.chain.base?.priority ?? 0) - (b.chain.base?.priority ?? 0),
  )
}

type Tri = boolean | 'unknown'

function setOf(rs: Ruleset, table: Table, name: string): NamedSet | undefined {
  return table.source === 'nft'
    ? table.sets.find((s) => s.name === name)
    : rs.ipsets.find((s) => s.name === name)
}

function matchOne(m: Match, p: Packet, rs: Ruleset, table: Table): Tri {
  const neg = (x: Tri, n: boolean | undefined): Tri => (x === 'unknown' ? x : n ? !x : x)
  switch (m.kind) {
    case 'ct_state':
      return m.states.includes(p.ct)
    case 'nfproto':
      return m.family === p.family
    case 'iface':
      return neg((m.dir === 'in' ? p.iif : p.oif) === m.name, m.negate)
    case 'addr': {
      if (m.family !== p.family) return m.negate ? true : false
      const ip = m.dir === 'src' ? p.src : p.dst
      if (m.set !== undefined) {
        const set = setOf(rs, table, m.set)
        if (!set) return 'unknown'
        return neg(
          set.elements.some((c) => cidrContains(c, ip)),
          m.negate,
        )
      }
      return neg(
        (m.cidrs ?? []).some((c) => cidrContains(c, ip)),
        m.negate,
      )
    }
    case 'proto':
      return neg(m.proto === p.proto, m.negate)
    case 'port': {
      if (p.proto !== m.proto) return false
      const port = m.dir === 'src' ? p.sport : p.dport
      if (port === undefined) return false
      return neg(
        m.ranges.some(([a, b]) => port >= a && port <= b),
        m.negate,
      )
    }
    case 'icmp':
      return (
        p.family === m.family &&
        p.proto === (m.family === 4 ? 1 : 58) &&
        p.icmp?.type === m.type &&
        (m.code === undefined || p.icmp.code === m.code)
      )
    case 'addr_port': {
      if (m.family !== p.family || m.proto !== p.proto) return false
      const set = setOf(rs, table, m.set)
      const port = m.dir === 'src' ? p.sport : p.dport
      if (!set?.withPort) return 'unknown'
      if (port === undefined) return false
      const ip = m.dir === 'src' ? p.src : p.dst
      return set.elements.includes(`${bigIntToAddr(m.family, addrToBigInt(ip).value)} . ${port}`)
    }
    case 'opaque':
      return 'unknown'
  }
}

function ruleMatches(r: Rule, p: Packet, rs: Ruleset, table: Table): Tri {
  let result: Tri = true
  for (const m of r.matches) {
    const x = matchOne(m, p, rs, table)
    if (x === false) return false
    if (x === 'unknown') result = 'unknown'
  }
  return result
}

type ChainEnd = { kind: 'accept' | 'drop' | 'reject'; by: RuleRef } | { kind: 'return' | 'end' }

interface Walk {
  readonly rs: Ruleset
  readonly p: Packet
  uncertain: boolean
  sawUs: boolean
  ourRulesEvaluated: number
  ours?: 'pass' | 'drop' | 'reject'
}

const refOf = (table: Table, chain: Chain, index: number, r: Rule, ours: boolean): RuleRef => ({
  table: tableKey(table),
  chain: chain.name,
  index,
  text: r.text ?? JSON.stringify({ m: r.matches, v: r.verdict }),
  ours,
})

/** Runs one chain (following jumps and gotos within the table) until a verdict or its end. */
function runChain(w: Walk, table: Table, chain: Chain, ours: boolean, depth: number): ChainEnd {
  if (depth > MAX_DEPTH) {
    w.uncertain = true
    return { kind: 'end' }
  }
  if (ours) w.sawUs = true
  for (let i = 0; i < chain.rules.length; i++) {
    const r = chain.rules[i]
    if (!r) continue
    if (ours) w.ourRulesEvaluated++
    const m = ruleMatches(r, w.p, w.rs, table)
    if (m === 'unknown') w.uncertain = true
    if (m !== true || r.verdict === null) continue
    const v = r.verdict
    switch (v.kind) {
      case 'accept':
      case 'drop':
      case 'reject':
        return { kind: v.kind, by: refOf(table, chain, i, r, ours) }
      case 'return':
        return { kind: 'return' }
      case 'opaque':
        w.uncertain = true
        continue
      case 'jump':
      case 'goto': {
        const target = table.chains.find((c) => c.name === v.target)
        if (!target) {
          w.uncertain = true
          continue
        }
        const intoOurs = ours || isHookIntoOurs(table, r)
        const end = runChain(w, table, target, intoOurs, depth + 1)
        if (intoOurs && !ours)
          w.ours = end.kind === 'drop' || end.kind === 'reject' ? end.kind : 'pass'
        if (end.kind === 'accept' || end.kind === 'drop' || end.kind === 'reject') return end
        if (v.kind === 'goto') return { kind: 'return' }
      }
    }
  }
  return { kind: 'end' }
}

/**
 * Follows a packet through every base chain on its hooks (spec sections 3 and 4): within a
 * base chain the first accept, drop or reject ends that chain; a drop or reject is final for
 * the whole path; an accept only ends its own base chain and the packet meets the next one.
 */
export function tracePacket(rs: Ruleset, packet: Packet): PathResult {
  const p = { ...packet, ct: kernelCtState(packet) }
  const w: Walk = { rs, p, uncertain: false, sawUs: false, ourRulesEvaluated: 0 }
  const steps: ChainStep[] = []
  let lastAccept: RuleRef | undefined
  for (const { table, chain } of baseChainsFor(rs, p)) {
    const base = chain.base
    if (!base) continue
    const ours = isOurTable(table)
    const end = runChain(w, table, chain, ours, 0)
    const outcome: FinalVerdict =
      end.kind === 'accept' || end.kind === 'drop' || end.kind === 'reject' ? end.kind : base.policy
    const by = 'by' in end ? end.by : undefined
    if (ours) w.ours = outcome === 'accept' ? 'pass' : outcome
    steps.push({
      table: tableKey(table),
      chain: chain.name,
      hook: base.hook,
      priority: base.priority,
      ours,
      outcome,
      ...(by && { by }),
    })
    if (outcome !== 'accept') {
      const decidedBy = by ?? {
        table: tableKey(table),
        chain: chain.name,
        index: -1,
        text: `policy ${base.policy}`,
        ours,
      }
      return {
        verdict: outcome,
        decidedBy,
        sawUs: w.sawUs,
        ...(w.ours && { ours: w.ours }),
        uncertain: w.uncertain,
        ourRulesEvaluated: w.ourRulesEvaluated,
        steps,
      }
    }
    if (by) lastAccept = by
  }
  return {
    verdict: 'accept',
    ...(lastAccept && { decidedBy: lastAccept }),
    sawUs: w.sawUs,
    ...(w.ours && { ours: w.ours }),
    uncertain: w.uncertain,
    ourRulesEvaluated: w.ourRulesEvaluated,
    steps,
  }
}
