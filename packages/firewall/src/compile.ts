import type {
  Direction,
  Failsafe,
  HostPolicy,
  HostRule,
  PolicyDecision,
  ServicePort,
} from '@palisade/model'
import { addrToBigInt, bigIntToAddr, familyOf, PROTO } from '@palisade/model'
import type { Backend, Desired, HookRule } from './ours.js'
import { IPSET_PREFIX, isIptables, NFT_TABLE, ourComment, ourIptablesChain } from './ours.js'
import { hookId, shortHash, withIds } from './rule-id.js'
import { countedProtocol, countingRules, FLOW_COUNTERS, flowCountTag } from './flow-count.js'
import { countChain, countingObjects, ipsetCountsProtocol } from './flow-count-ipset.js'
import type { LoggedDecision } from './flow-log.js'
import {
  DEFAULT_FLOW_LOG_GROUP,
  encodeFlowLogPrefix,
  FLOW_LOG_SNAPLEN,
  FLOW_LOG_THRESHOLD,
  loggedDecisions,
} from './flow-log.js'
import type { Chain, IpFamily, Match, NamedSet, Rule, RuleLog, Table, Verdict } from './ruleset.js'
import { canonicalMatches } from './ruleset.js'

/** Base-chain priorities (spec section 4): after conntrack, before kube-proxy and iptables. */
export const NFT_PRIORITY = { first: -140, nonPrimary: 20 } as const

const DIRECTIONS = [
  { nft: 'input', ipt: 'INPUT', hook: 'input' },
  { nft: 'output', ipt: 'OUTPUT', hook: 'output' },
  { nft: 'forward', ipt: 'FORWARD', hook: 'forward' },
] as const

export interface CompileOptions {
  readonly backend: Backend
  readonly failsafe: Failsafe
  /** nftables base-chain priority; the mode's default when absent. */
  readonly priority?: number
  /** The netlink group our flow logs go to; `DEFAULT_FLOW_LOG_GROUP` when absent. */
  readonly flowLogGroup?: number
  /**
   * Count allowed connections in the kernel (`flow_summary`) instead of logging each:
   * the agent asks for it where no foreign rule after ours can drop what we allow (a drop
   * downstream is told by watching conntrack confirm the logged connections).
   */
  readonly flowCounting?: boolean
}

export class CompileError extends Error {}

/**
 * Whether `flowCounting` can change what `p` compiles to: `flow_summary` on every backend (the
 * kernel's key has no client port, so full detail is logged).
 */
export const canCountInKernel = (p: HostPolicy): boolean => p.visibilityLevel === 'flow_summary'

/** Whether `d`'s rules count allowed connections in the kernel: it declares counting sets. */
export const countsInKernel = (d: Desired): boolean =>
  d.tables.some((t) => (t.counters ?? []).length > 0) || d.ipsets.some((s) => s.counts)

/**
 * ipsets and nft sets are named after the host rule, so a peer change only touches elements.
 * nftables keeps a rule's prefixes (`nets`) apart from its single addresses: nft reads an
 * interval set whole before it changes one element (a second at 100,000 peers), a set of single
 * addresses not at all. ipsets of type hash:net change one element in O(1) either way.
 */
export function setName(
  backend: Backend,
  ruleKey: string,
  family: IpFamily,
  kind: 'addresses' | 'nets' = 'addresses',
): string {
  const h = shortHash(ruleKey, 10)
  if (isIptables(backend)) return `${IPSET_PREFIX}${h}-v${family}`
  return kind === 'nets' ? `peers_${h}_v${family}_nets` : `peers_${h}_v${family}`
}

/**
 * Each peer list split, by identity: the rules and the sets of a compile both ask, a pass over
 * 100,000 addresses each time. Lists are never changed once made (readonly).
 */
const SPLIT = new WeakMap<
  readonly string[],
  { family: IpFamily; split: { addresses: readonly string[]; nets: readonly string[] } }
>()

/** Single addresses (a /32 or /128) and wider prefixes of a normalised CIDR list. */
export function splitPeers(
  cidrs: readonly string[],
  family: IpFamily,
): { addresses: readonly string[]; nets: readonly string[] } {
  const known = SPLIT.get(cidrs)
  if (known?.family === family) return known.split
  const full = `/${family === 4 ? 32 : 128}`
  const single = (c: string) => c.endsWith(full)
  // Mostly single addresses (100,000 peers): the list itself. Sorting 100,000 into two new
  // arrays cost 13 ms and their garbage, against 2 ms to find that none is a prefix.
  const split = cidrs.every(single)
    ? { addresses: cidrs, nets: [] }
    : { addresses: cidrs.filter(single), nets: cidrs.filter((c) => !single(c)) }
  SPLIT.set(cidrs, { family, split })
  return split
}

const familyPeers = (r: HostRule, family: IpFamily): readonly string[] =>
  r.peers === 'any' ? [] : family === 4 ? r.peers.v4 : r.peers.v6

/** The matches for one service port, or null where it cannot apply to the family. */
function serviceMatches(
  sp: ServicePort,
  family: IpFamily | null,
  backend: Backend,
): Match[] | null {
  const ipt = isIptables(backend)
  if (sp.proto === PROTO.any) return []
  if (sp.proto === PROTO.icmp || sp.proto === PROTO.icmpv6) {
    const icmpFamily: IpFamily = sp.proto === PROTO.icmp ? 4 : 6
    if (family !== null && family !== icmpFamily) return null
    if (sp.icmpType === undefined) return [{ kind: 'proto', proto: sp.proto }]
    const icmp: Match = {
      kind: 'icmp',
      family: icmpFamily,
      type: sp.icmpType,
      ...(sp.icmpCode !== undefined && { code: sp.icmpCode }),
    }
    // nft's `icmp type` implies the protocol; iptables needs `-p icmp` before `-m icmp`.
    return ipt ? [{ kind: 'proto', proto: sp.proto }, icmp] : [icmp]
  }
  if (sp.port === undefined) return [{ kind: 'proto', proto: sp.proto }]
  const port: Match = {
    kind: 'port',
    proto: sp.proto,
    dir: 'dst',
    ranges: [[sp.port, sp.toPort ?? sp.port]],
  }
  return ipt ? [{ kind: 'proto', proto: sp.proto }, port] : [port]
}

interface ChainContext {
  readonly backend: Backend
  readonly family: IpFamily | null
  readonly allow: Verdict
  readonly block: Verdict
  readonly flowLogGroup: number
  /** The decisions the workload's visibility level reports. */
  readonly logged: ReadonlySet<PolicyDecision>
  /** Allowed connections are counted in the kernel where the rule pins a protocol. */
  readonly counting: boolean
}

/** The decision a host rule stands for: a block the workload does not enforce only would block. */
function ruleDecision(r: HostRule, enforcement: HostPolicy['enforcementMode']): LoggedDecision {
  if (r.action === 'allow') return 'allowed'
  return enforcement === 'visibility_only' ? 'potentially_blocked' : 'blocked'
}

/** Whether a host rule needs kernel rules: it acts, or its traffic must be reported. */
function inKernel(r: HostRule, p: HostPolicy): boolean {
  const d = ruleDecision(r, p.enforcementMode)
  return d !== 'potentially_blocked' || loggedDecisions(p.visibilityLevel).has(d)
}

/**
 * The rules that carry out one decision: nftables logs and decides in one rule; iptables needs a
 * NFLOG rule with the same matches before the deciding one. An allowed connection counted in
 * the kernel is counted by rules before the deciding one (see flow-count.ts), and not logged.
 */
function decided(
  matches: readonly Match[],
  verdict: Verdict,
  decision: LoggedDecision,
  direction: Direction,
  hostRuleKey: string | null,
  ctx: ChainContext,
): Rule[] {
  if (!ctx.logged.has(decision)) return [{ matches, verdict }]
  if (ctx.counting && decision === 'allowed' && hostRuleKey !== null) {
    const tag = flowCountTag(direction, hostRuleKey)
    const proto = countedProtocol(matches)
    // iptables: a jump into the direction's counting chain (flow-count-ipset.ts)
    const counting: Rule[] = !isIptables(ctx.backend)
      ? countingRules(matches, tag)
      : proto !== undefined && ipsetCountsProtocol(proto)
        ? [{ matches, verdict: { kind: 'jump', target: countChain(direction) }, countTag: tag }]
        : []
    if (counting.length > 0) return [...counting, { matches, verdict }]
  }
  const log: RuleLog = {
    group: ctx.flowLogGroup,
    prefix: encodeFlowLogPrefix(decision, direction, hostRuleKey),
    snaplen: FLOW_LOG_SNAPLEN,
    threshold: FLOW_LOG_THRESHOLD,
  }
  return isIptables(ctx.backend)
    ? [
        { matches, verdict: null, log },
        { matches, verdict },
      ]
    : [{ matches, verdict, log }]
}

/**
 * The peer lookups of a host rule in one family, each a rule of its own: one set on iptables;
 * on nftables the single addresses, and the prefixes where there are any.
 */
function peerMatches(r: HostRule, family: IpFamily, backend: Backend): Match[] {
  const dir = r.direction === 'inbound' ? 'src' : 'dst'
  const lookup = (kind: 'addresses' | 'nets'): Match => ({
    kind: 'addr',
    dir,
    family,
    set: setName(backend, r.key, family, kind),
  })
  if (isIptables(backend)) return [lookup('addresses')]
  const { nets } = splitPeers(familyPeers(r, family), family)
  return nets.length > 0 ? [lookup('addresses'), lookup('nets')] : [lookup('addresses')]
}

/** One kernel rule per (family where peers are a set) x service port of a host rule. */
function hostRuleRules(r: HostRule, ctx: ChainContext, p: HostPolicy): Rule[] {
  // Blocks we do not enforce (visibility only) pass traffic on, and exist only to report it.
  if (!inKernel(r, p)) return []
  const decision = ruleDecision(r, p.enforcementMode)
  const verdict = decision === 'blocked' ? ctx.block : ctx.allow
  const families: (IpFamily | null)[] =
    r.peers === 'any' ? [ctx.family] : ctx.family === null ? [4, 6] : [ctx.family]
  const out: Rule[] = []
  for (const fam of families) {
    const lookups: Match[][] =
      r.peers === 'any' || fam === null ? [[]] : peerMatches(r, fam, ctx.backend).map((m) => [m])
    for (const sp of r.services) {
      const svc = serviceMatches(sp, fam, ctx.backend)
      if (!svc) continue
      for (const addr of lookups)
        out.push(
          ...decided(
            canonicalMatches([...addr, ...svc]),
            verdict,
            decision,
            r.direction,
            r.key,
            ctx,
          ),
        )
    }
  }
  return out
}

/**
 * The ICMPv6 a host cannot do without (RFC 4890 section 4.4.1), by direction: the error messages
 * (destination unreachable, packet too big, time exceeded, parameter problem), neighbour and
 * router discovery, redirects and MLD (so switches that snoop MLD keep forwarding neighbour
 * solicitations to us). IPv4 needs no such rules: ARP is not IP, and ICMP errors are `related`.
 * Neither need these: conntrack never tracks discovery and MLD (their state is `untracked`), and
 * calls an error for a connection it no longer knows `invalid`; neither passes the first rule.
 */
export const ESSENTIAL_ICMPV6 = {
  input: [1, 2, 3, 4, 130, 134, 135, 136, 137],
  output: [1, 2, 3, 4, 131, 132, 133, 135, 136, 143],
} as const

function failsafeRules(direction: 'input' | 'output', fs: Failsafe, ctx: ChainContext): Rule[] {
  const rules: Rule[] = []
  const udp = (port: number): Match[] =>
    isIptables(ctx.backend)
      ? [
          { kind: 'proto', proto: PROTO.udp },
          { kind: 'port', proto: PROTO.udp, dir: 'dst', ranges: [[port, port]] },
        ]
      : [{ kind: 'port', proto: PROTO.udp, dir: 'dst', ranges: [[port, port]] }]
  const dhcp = direction === 'input' ? { 4: 68, 6: 546 } : { 4: 67, 6: 547 }
  if (direction === 'input') {
    for (const sp of fs.managementPorts) {
      const m = serviceMatches(sp, ctx.family, ctx.backend)
      if (m) rules.push({ matches: canonicalMatches(m), verdict: ctx.allow })
    }
  } else if (!isIptables(ctx.backend)) {
    // nftables: one lookup in a concatenated address-and-port set per family.
    for (const fam of [4, 6] as const) {
      if (fs.servers.some((s) => familyOf(s.address) === fam)) {
        rules.push({
          matches: [
            {
              kind: 'addr_port',
              dir: 'dst',
              family: fam,
              proto: PROTO.tcp,
              set: `failsafe_v${fam}`,
            },
          ],
          verdict: ctx.allow,
        })
      }
    }
  } else {
    for (const s of fs.servers) {
      const fam: IpFamily = s.address.includes(':') ? 6 : 4
      if (ctx.family !== null && ctx.family !== fam) continue
      const addr: Match = {
        kind: 'addr',
        dir: 'dst',
        family: fam,
        cidrs: [`${s.address}/${fam === 4 ? 32 : 128}`],
      }
      const port = serviceMatches({ proto: PROTO.tcp, port: s.port }, fam, ctx.backend) ?? []
      rules.push({ matches: canonicalMatches([addr, ...port]), verdict: ctx.allow })
    }
  }
  if (fs.dhcpClient) {
    for (const fam of [4, 6] as const) {
      if (ctx.family !== null && ctx.family !== fam) continue
      const fm: Match[] = ctx.family === null ? [{ kind: 'nfproto', family: fam }] : []
      rules.push({ matches: canonicalMatches([...fm, ...udp(dhcp[fam])]), verdict: ctx.allow })
    }
  }
  for (const icmpType of ESSENTIAL_ICMPV6[direction]) {
    const m = serviceMatches({ proto: PROTO.icmpv6, icmpType }, ctx.family, ctx.backend)
    if (m) rules.push({ matches: canonicalMatches(m), verdict: ctx.allow })
  }
  return rules
}

/** Our chain for one hook, in the order of spec section 2. */
function chainRules(
  direction: 'input' | 'output' | 'forward',
  p: HostPolicy,
  fs: Failsafe,
  ctx: ChainContext,
): Rule[] {
  const rules: Rule[] = [
    { matches: [{ kind: 'ct_state', states: ['established', 'related'] }], verdict: ctx.allow },
  ]
  if (direction !== 'forward') {
    if (!p.loopbackInPolicy) {
      rules.push({
        matches: [{ kind: 'iface', dir: direction === 'input' ? 'in' : 'out', name: 'lo' }],
        verdict: ctx.allow,
      })
    }
    rules.push(...failsafeRules(direction, fs, ctx))
    const dir = direction === 'input' ? 'inbound' : 'outbound'
    for (const r of p.rules) if (r.direction === dir) rules.push(...hostRuleRules(r, ctx, p))
    const full = p.enforcementMode === 'full'
    rules.push(
      ...decided(
        [],
        full ? ctx.block : ctx.allow,
        full ? 'blocked' : 'potentially_blocked',
        dir,
        null,
        ctx,
      ),
    )
    return rules
  }
  // Forwarded traffic is not a workload's own: decided by the default, never reported.
  rules.push({ matches: [], verdict: p.enforcementMode === 'full' ? ctx.block : ctx.allow })
  return rules
}

/**
 * Compiles a host policy for one backend (spec sections 2 to 4). Pure: the output depends only
 * on the arguments. An idle workload compiles to nothing, which removes our rules.
 */
export function compile(p: HostPolicy, opts: CompileOptions): Desired {
  const { backend } = opts
  const mode = p.mode.mode
  const first = mode !== 'coexistence_non_primary'
  const base = {
    backend,
    version: p.version,
    mode,
    hookPosition: first ? 'first' : 'last',
  } as const
  if (!p.mode.applied) return { ...base, tables: [], hooks: [], ipsets: [] }
  const block: Verdict = { kind: p.rejectBlocked ? 'reject' : 'drop' }
  const sets = setsOf(p, backend)
  const flowLog = {
    flowLogGroup: opts.flowLogGroup ?? DEFAULT_FLOW_LOG_GROUP,
    logged: loggedDecisions(p.visibilityLevel),
    counting: opts.flowCounting === true && canCountInKernel(p),
  }

  if (backend === 'nftables') {
    const priority = opts.priority ?? (first ? NFT_PRIORITY.first : NFT_PRIORITY.nonPrimary)
    if (!Number.isInteger(priority) || priority <= -200 || priority >= 300) {
      throw new CompileError(
        `nftables priority ${priority} must be a whole number above -200 (conntrack) and below 300`,
      )
    }
    // nftables has no cross-table final accept: `accept` ends only our base chain in every mode.
    const ctx: ChainContext = {
      backend,
      family: null,
      allow: { kind: 'accept' },
      block,
      ...flowLog,
    }
    const chains: Chain[] = DIRECTIONS.map((d) => ({
      name: d.nft,
      base: { type: 'filter', hook: d.hook, priority, policy: 'accept' },
      rules: withIds(`inet ${NFT_TABLE}/${d.nft}`, chainRules(d.nft, p, opts.failsafe, ctx)),
    }))
    const counts = chains.some((c) => c.rules.some((r) => r.count))
    return {
      ...base,
      tables: [
        {
          family: 'inet',
          name: NFT_TABLE,
          source: 'nft',
          chains,
          sets: [...sets, ...failsafeSets(opts.failsafe)],
          ...(counts && { counters: FLOW_COUNTERS }),
        },
      ],
      hooks: [],
      ipsets: [],
    }
  }

  const allow: Verdict = { kind: mode === 'exclusive' ? 'accept' : 'return' }
  const tables: Table[] = []
  const hooks: HookRule[] = []
  for (const family of [4, 6] as const) {
    const tf = family === 4 ? 'ip' : 'ip6'
    const ctx: ChainContext = { backend, family, allow, block, ...flowLog }
    const chains = DIRECTIONS.map((d) => ({
      name: ourIptablesChain(d.ipt),
      rules: withIds(
        `${tf} filter/${ourIptablesChain(d.ipt)}`,
        chainRules(d.nft, p, opts.failsafe, ctx),
      ),
    }))
    const counts = chains.some((c) => c.rules.some((r) => r.countTag !== undefined))
    const counting = counts ? countingObjects(family) : { chains: [], sets: [] }
    tables.push({
      family: tf,
      name: 'filter',
      source: backend,
      chains: [...chains, ...counting.chains],
      sets: [],
    })
    sets.push(...counting.sets)
    for (const d of DIRECTIONS) {
      hooks.push({
        family: tf,
        chain: d.ipt,
        rule: {
          matches: [],
          verdict: { kind: 'jump', target: ourIptablesChain(d.ipt) },
          comment: ourComment(hookId(`${tf} filter/${d.ipt}`)),
        },
      })
    }
  }
  return { ...base, tables, hooks, ipsets: sets }
}

function setsOf(p: HostPolicy, backend: Backend): NamedSet[] {
  const out: NamedSet[] = []
  for (const r of p.rules) {
    if (r.peers === 'any' || !inKernel(r, p)) continue
    for (const family of [4, 6] as const) {
      const peers = familyPeers(r, family)
      if (isIptables(backend)) {
        out.push({ name: setName(backend, r.key, family), family, elements: peers })
        continue
      }
      const { addresses, nets } = splitPeers(peers, family)
      out.push({ name: setName(backend, r.key, family), family, elements: addresses, exact: true })
      if (nets.length > 0)
        out.push({ name: setName(backend, r.key, family, 'nets'), family, elements: nets })
    }
  }
  return out
}

/** The agent's channel to its server, as `ADDR . PORT` elements of one set per family. */
function failsafeSets(fs: Failsafe): NamedSet[] {
  return ([4, 6] as const).flatMap((family) => {
    const elements = fs.servers
      .filter((s) => familyOf(s.address) === family)
      .map((s) => `${bigIntToAddr(family, addrToBigInt(s.address).value)} . ${s.port}`)
    return elements.length > 0
      ? [
          {
            name: `failsafe_v${family}`,
            family,
            elements: [...new Set(elements)].sort(),
            withPort: true as const,
          },
        ]
      : []
  })
}
