import { countChainSpecs, renderCountIpsetCreate } from './flow-count-ipset.js'
import type { BuiltinChain, Desired } from './ours.js'
import { BUILTIN_CHAINS, isOurIpset } from './ours.js'
import {
  byte,
  cidr,
  iface,
  logPrefix,
  oneOf,
  ourCommentText,
  ourIpsetName,
  ourIptablesChainName,
  portRanges,
  RenderError,
  savedRuleSpec,
  u16,
} from './render-grammar.js'
import type { CtState, IpFamily, Match, NamedSet, Rule, Table, Verdict } from './ruleset.js'

const PROTO_NAME: Record<number, string> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  58: 'ipv6-icmp',
  132: 'sctp',
}
/** The match modules that take `--sport` / `--dport`. */
const PORT_MODULE: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' }
const ICMP_MODULE: Record<IpFamily, [string, string]> = {
  4: ['icmp', '--icmp-type'],
  6: ['icmp6', '--icmpv6-type'],
}
const CT_STATES: readonly CtState[] = ['established', 'related', 'new', 'invalid', 'untracked']
const FAMILIES = [4, 6] as const

const not = (n: boolean | undefined) => (n ? '! ' : '')
const side = (dir: unknown, src: string, dst: string) =>
  oneOf('direction', dir, ['src', 'dst']) === 'src' ? src : dst
const builtin = (field: string, chain: unknown) => oneOf(field, chain, BUILTIN_CHAINS)

function renderMatches(matches: readonly Match[]): string[] {
  const head: string[] = []
  const mods: string[] = []
  for (const m of matches) {
    switch (m.kind) {
      case 'ct_state': {
        if (m.states.length === 0) throw new RenderError('ct state', '', 'needs at least one state')
        const states = m.states.map((s) => oneOf('ct state', s, CT_STATES).toUpperCase())
        mods.push(`-m conntrack --ctstate ${states.join(',')}`)
        break
      }
      case 'nfproto':
        oneOf('nfproto', m.family, FAMILIES)
        break // a table holds one family already
      case 'iface': {
        const flag = oneOf('interface direction', m.dir, ['in', 'out']) === 'in' ? '-i' : '-o'
        head.push(`${not(m.negate)}${flag} ${iface('interface', m.name)}`)
        break
      }
      case 'addr': {
        const dir = side(m.dir, 'src', 'dst')
        if (m.set !== undefined)
          mods.push(`-m set ${not(m.negate)}--match-set ${ourIpsetName('set', m.set)} ${dir}`)
        else if (m.cidrs?.length === 1)
          head.push(
            `${not(m.negate)}${dir === 'src' ? '-s' : '-d'} ${cidr('address', m.cidrs[0], m.family)}`,
          )
        else
          throw new RenderError(
            'address',
            (m.cidrs ?? []).join(','),
            'iptables matches one literal address per rule; use a set for more',
          )
        break
      }
      case 'proto':
        head.push(`${not(m.negate)}-p ${PROTO_NAME[m.proto] ?? byte('protocol', m.proto)}`)
        break
      case 'port': {
        const mod = PORT_MODULE[m.proto]
        if (!mod)
          throw new RenderError('port protocol', m.proto, 'iptables ports need TCP, UDP or SCTP')
        const flag = side(m.dir, 'sport', 'dport')
        const text = portRanges('port', m.ranges).map(([a, b]) => (a === b ? a : `${a}:${b}`))
        if (text.length === 1) mods.push(`-m ${mod} ${not(m.negate)}--${flag} ${text[0]}`)
        else mods.push(`-m multiport ${not(m.negate)}--${flag}s ${text.join(',')}`)
        break
      }
      case 'icmp': {
        const [mod, opt] = ICMP_MODULE[oneOf('icmp family', m.family, FAMILIES)]
        const code = m.code !== undefined ? `/${byte('icmp code', m.code)}` : ''
        mods.push(`-m ${mod} ${opt} ${byte('icmp type', m.type)}${code}`)
        break
      }
      case 'addr_port':
        throw new RenderError(
          'match',
          m.set,
          'iptables rules use one literal address and port, not a concatenated set',
        )
      case 'opaque':
        throw new RenderError('match', m.text, 'we only read it as text and cannot write it')
      default:
        throw new RenderError('match', (m as { kind: unknown }).kind, 'is not a match we write')
    }
  }
  return [...head, ...mods]
}

function renderVerdict(v: Verdict): string {
  switch (v.kind) {
    case 'jump':
      return `-j ${ourIptablesChainName('jump target', v.target)}`
    case 'goto':
      return `-g ${ourIptablesChainName('goto target', v.target)}`
    case 'opaque':
      throw new RenderError('target', v.text, 'we only read it as text and cannot write it')
    default:
      return `-j ${oneOf('verdict', v.kind, ['accept', 'drop', 'reject', 'return']).toUpperCase()}`
  }
}

/** The rule's text after `-A CHAIN`, in the order iptables-save prints it. */
export function renderIptablesSpec(r: Rule): string {
  const parts = renderMatches(r.matches)
  if (r.comment !== undefined)
    parts.push(`-m comment --comment ${ourCommentText('comment', r.comment)}`)
  if (r.log && r.verdict)
    throw new RenderError(
      'rule',
      r.comment ?? '',
      'iptables cannot log and decide in one rule: split it in two',
    )
  if (r.log) {
    const { prefix, group, snaplen, threshold } = r.log
    parts.push(
      `-j NFLOG --nflog-prefix ${logPrefix('log prefix', prefix)} --nflog-group ${u16('log group', group)} --nflog-size ${u16('log snaplen', snaplen)} --nflog-threshold ${u16('log queue threshold', threshold)}`,
    )
  }
  if (r.verdict) parts.push(renderVerdict(r.verdict))
  return parts.join(' ')
}

/** What we know of the live state that the iptables transaction depends on. */
export interface IptablesApplyContext {
  /** Hooks of ours found in built-in chains: their index in the chain and their text. */
  readonly hooksFound: readonly {
    family: 'ip' | 'ip6'
    chain: BuiltinChain
    index: number
    spec: string
  }[]
  /** Whether the mode changed since the last apply (a non-primary hook is then placed last). */
  readonly modeChanged: boolean
  /** Foreign rules to delete (exclusive: those standing before our hook), as their spec. */
  readonly foreignToDelete: readonly { family: 'ip' | 'ip6'; chain: BuiltinChain; spec: string }[]
  /** Our chains that exist but are no longer wanted (e.g. after going idle). */
  readonly staleChains: readonly { family: 'ip' | 'ip6'; chain: string }[]
}

/**
 * `iptables-restore --noflush` input for one family. Declaring our chains flushes and refills
 * them. Rules are deleted by their exact text, never by number: if another process changed the
 * chain since we read it, the whole commit fails and the caller re-reads, instead of deleting
 * somebody else's rule. Hooks move only when the mode requires it.
 */
export function renderIptablesRestore(
  d: Desired,
  family: 'ip' | 'ip6',
  ctx: IptablesApplyContext,
): string {
  oneOf('table family', family, ['ip', 'ip6'])
  const table: Table | undefined = d.tables.find((t) => t.family === family)
  const chains = (table?.chains ?? []).map((c) => ({
    ...c,
    name: ourIptablesChainName('chain', c.name),
  }))
  const found = ctx.hooksFound
    .filter((x) => x.family === family)
    .map((h) => ({
      ...h,
      chain: builtin('hook chain', h.chain),
      spec: savedRuleSpec('hook', h.spec),
    }))
  const lines = ['*filter']
  for (const c of chains) lines.push(`:${c.name} - [0:0]`)
  for (const f of ctx.foreignToDelete.filter((x) => x.family === family))
    lines.push(`-D ${builtin('chain', f.chain)} ${savedRuleSpec('foreign rule', f.spec)}`)
  const hooks = d.hooks
    .filter((x) => x.family === family)
    .map((h) => ({ chain: builtin('hook chain', h.chain), spec: renderIptablesSpec(h.rule) }))
  const keep = (h: { chain: BuiltinChain; spec: string }) =>
    keepHook(
      d,
      ctx,
      found.filter((x) => x.chain === h.chain),
      h.spec,
    )
  for (const h of found) {
    const wanted = hooks.find((x) => x.chain === h.chain)
    if (!wanted || !keep(wanted)) lines.push(`-D ${h.chain} ${h.spec}`)
  }
  for (const h of hooks) {
    if (keep(h)) continue
    lines.push(d.hookPosition === 'first' ? `-I ${h.chain} 1 ${h.spec}` : `-A ${h.chain} ${h.spec}`)
  }
  for (const c of chains) {
    const specs =
      c.countsInto !== undefined
        ? countChainSpecs(ourIpsetName('counting set', c.countsInto))
        : c.rules.map(renderIptablesSpec)
    for (const spec of specs) lines.push(`-A ${c.name} ${spec}`)
  }
  // Deleted last, once all are emptied: a chain can only go once nothing jumps to it any more
  // (no hook, and none of our chains: they jump to the counting chains).
  const stale = ctx.staleChains
    .filter((x) => x.family === family)
    .map((s) => ourIptablesChainName('stale chain', s.chain))
  lines.push(...stale.map((c) => `-F ${c}`), ...stale.map((c) => `-X ${c}`))
  lines.push('COMMIT')
  return `${lines.join('\n')}\n`
}

/** A hook stays where it is when it is our only one, unaltered, and placed as the mode wants. */
function keepHook(
  d: Desired,
  ctx: IptablesApplyContext,
  found: IptablesApplyContext['hooksFound'],
  spec: string,
): boolean {
  const only = found.length === 1 ? found[0] : undefined
  if (!only || only.spec !== spec) return false
  return d.hookPosition === 'first' ? only.index === 0 : !ctx.modeChanged
}

/** A set's elements, re-formatted; ipset's hash:net cannot hold a /0, two halves cover it. */
const ipsetElements = (s: NamedSet, family: IpFamily) =>
  s.elements.flatMap((e) => {
    const c = cidr('set element', e, family)
    return c === '0.0.0.0/0'
      ? ['0.0.0.0/1', '128.0.0.0/1']
      : c === '::/0'
        ? ['::/1', '8000::/1']
        : [c]
  })

/**
 * `ipset restore` input run before the rules commit. A set that does not exist yet is created
 * and filled in place: no rule uses it until the commit, so it must hold its contents before.
 * A set that exists (and rules may use) gets its new contents staged in a temporary set;
 * nothing the kernel enforces changes until renderIpsetSwap runs, after the commit. A counting
 * set is only created where it is missing: what it holds is the kernel's counts, not yet read.
 */
export function renderIpsetStage(sets: readonly NamedSet[], existing: ReadonlySet<string>): string {
  const lines: string[] = []
  for (const s of sets) {
    const family = oneOf('set family', s.family, FAMILIES)
    const name = ourIpsetName('set', s.name)
    if (s.counts) {
      lines.push(renderCountIpsetCreate({ ...s, name, family }))
      continue
    }
    const target = existing.has(name) ? `${name}-t` : name
    const elements = ipsetElements(s, family)
    lines.push(
      `create ${target} hash:net family ${family === 4 ? 'inet' : 'inet6'} hashsize 1024 maxelem ${Math.max(65536, s.elements.length * 2)} -exist`,
      `flush ${target}`,
    )
    for (const e of elements) lines.push(`add ${target} ${e}`)
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : ''
}

/** Swaps staged contents into the sets that existed, one atomic swap each, and drops the stage. */
export function renderIpsetSwap(sets: readonly NamedSet[], existing: ReadonlySet<string>): string {
  const lines = sets
    .filter((s) => existing.has(s.name) && !s.counts)
    .map((s) => ourIpsetName('set', s.name))
    .flatMap((name) => [`swap ${name}-t ${name}`, `destroy ${name}-t`])
  return lines.length > 0 ? `${lines.join('\n')}\n` : ''
}

/** `ipset restore` input destroying sets of ours that are no longer referenced. */
export function renderIpsetDestroy(names: readonly string[]): string {
  const ours = names.filter(isOurIpset).map((n) => `destroy ${ourIpsetName('set', n)}`)
  return ours.length > 0 ? `${ours.join('\n')}\n` : ''
}

/** ipset element changes for a peer change: O(changed), not O(set size). */
export function renderIpsetDelta(
  changes: readonly { set: string; add: readonly string[]; remove: readonly string[] }[],
): string {
  const out: string[] = []
  for (const c of changes) {
    const set = ourIpsetName('set', c.set)
    for (const e of c.remove) out.push(`del ${set} ${cidr('set element', e)} -exist`)
    for (const e of c.add) out.push(`add ${set} ${cidr('set element', e)} -exist`)
  }
  return out.length > 0 ? `${out.join('\n')}\n` : ''
}
