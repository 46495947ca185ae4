import type { BuiltinChain, Desired } from './ours.js'
import { isOurIpset } from './ours.js'
import type { IpFamily, Match, NamedSet, Rule, Table, Verdict } from './ruleset.js'
import { RenderError } from './render-nft.js'

const PROTO_NAME: Record<number, string> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  58: 'ipv6-icmp',
  132: 'sctp',
}
const ICMP_MODULE: Record<IpFamily, [string, string]> = {
  4: ['icmp', '--icmp-type'],
  6: ['icmp6', '--icmpv6-type'],
}

const quote = (s: string) => (/^[\w:.\-/]+$/.test(s) ? s : `"${s.replace(/["\\]/g, '')}"`)
const not = (n: boolean | undefined) => (n ? '! ' : '')

function renderMatches(matches: readonly Match[]): string[] {
  const head: string[] = []
  const mods: string[] = []
  for (const m of matches) {
    switch (m.kind) {
      case 'ct_state':
        mods.push(`-m conntrack --ctstate ${m.states.map((s) => s.toUpperCase()).join(',')}`)
        break
      case 'nfproto':
        break // a table holds one family already
      case 'iface':
        head.push(`${not(m.negate)}${m.dir === 'in' ? '-i' : '-o'} ${m.name}`)
        break
      case 'addr':
        if (m.set !== undefined) mods.push(`-m set ${not(m.negate)}--match-set ${m.set} ${m.dir}`)
        else if (m.cidrs?.length === 1)
          head.push(`${not(m.negate)}${m.dir === 'src' ? '-s' : '-d'} ${m.cidrs[0]}`)
        else
          throw new RenderError('iptables matches one literal address per rule; use a set for more')
        break
      case 'proto':
        head.push(`${not(m.negate)}-p ${PROTO_NAME[m.proto] ?? m.proto}`)
        break
      case 'port': {
        const flag = m.dir === 'src' ? 'sport' : 'dport'
        const text = m.ranges.map(([a, b]) => (a === b ? `${a}` : `${a}:${b}`))
        if (text.length === 1)
          mods.push(`-m ${PROTO_NAME[m.proto]} ${not(m.negate)}--${flag} ${text[0]}`)
        else mods.push(`-m multiport ${not(m.negate)}--${flag}s ${text.join(',')}`)
        break
      }
      case 'icmp': {
        const [mod, opt] = ICMP_MODULE[m.family]
        mods.push(`-m ${mod} ${opt} ${m.type}${m.code !== undefined ? `/${m.code}` : ''}`)
        break
      }
      case 'addr_port':
        throw new RenderError(
          'iptables rules use one literal address and port, not a concatenated set',
        )
      case 'opaque':
        throw new RenderError(`cannot render a rule we only read as text: ${m.text}`)
    }
  }
  return [...head, ...mods]
}

function renderVerdict(v: Verdict): string {
  switch (v.kind) {
    case 'jump':
      return `-j ${v.target}`
    case 'goto':
      return `-g ${v.target}`
    case 'opaque':
      throw new RenderError(`cannot render target ${v.text}`)
    default:
      return `-j ${v.kind.toUpperCase()}`
  }
}

/** The rule's text after `-A CHAIN`, in the order iptables-save prints it. */
export function renderIptablesSpec(r: Rule): string {
  const parts = renderMatches(r.matches)
  if (r.comment) parts.push(`-m comment --comment ${quote(r.comment)}`)
  if (r.log && r.verdict)
    throw new RenderError('iptables cannot log and decide in one rule: split it in two')
  if (r.log)
    parts.push(
      `-j NFLOG --nflog-prefix ${quote(r.log.prefix)} --nflog-group ${r.log.group} --nflog-size ${r.log.snaplen} --nflog-threshold ${r.log.threshold}`,
    )
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
  const table: Table | undefined = d.tables.find((t) => t.family === family)
  const found = ctx.hooksFound.filter((x) => x.family === family)
  const lines = ['*filter']
  for (const c of table?.chains ?? []) lines.push(`:${c.name} - [0:0]`)
  for (const f of ctx.foreignToDelete.filter((x) => x.family === family))
    lines.push(`-D ${f.chain} ${f.spec}`)
  for (const h of found) {
    const wanted = d.hooks.find((x) => x.family === family && x.chain === h.chain)
    if (
      wanted &&
      keepHook(
        d,
        ctx,
        found.filter((x) => x.chain === h.chain),
        renderIptablesSpec(wanted.rule),
      )
    )
      continue
    lines.push(`-D ${h.chain} ${h.spec}`)
  }
  for (const h of d.hooks.filter((x) => x.family === family)) {
    const spec = renderIptablesSpec(h.rule)
    if (
      keepHook(
        d,
        ctx,
        found.filter((x) => x.chain === h.chain),
        spec,
      )
    )
      continue
    lines.push(d.hookPosition === 'first' ? `-I ${h.chain} 1 ${spec}` : `-A ${h.chain} ${spec}`)
  }
  for (const c of table?.chains ?? [])
    for (const r of c.rules) lines.push(`-A ${c.name} ${renderIptablesSpec(r)}`)
  // Deleted last: a chain can only go once no hook jumps to it any more.
  for (const s of ctx.staleChains.filter((x) => x.family === family))
    lines.push(`-F ${s.chain}`, `-X ${s.chain}`)
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

/** ipset's hash:net cannot hold a /0; two halves cover the same addresses. */
const ipsetElements = (s: NamedSet) =>
  s.elements.flatMap((e) =>
    e === '0.0.0.0/0' ? ['0.0.0.0/1', '128.0.0.0/1'] : e === '::/0' ? ['::/1', '8000::/1'] : [e],
  )

/**
 * `ipset restore` input run before the rules commit. A set that does not exist yet is created
 * and filled in place: no rule uses it until the commit, so it must hold its contents before.
 * A set that exists (and rules may use) gets its new contents staged in a temporary set;
 * nothing the kernel enforces changes until renderIpsetSwap runs, after the commit.
 */
export function renderIpsetStage(sets: readonly NamedSet[], existing: ReadonlySet<string>): string {
  const lines: string[] = []
  for (const s of sets) {
    const fam = s.family === 4 ? 'inet' : 'inet6'
    const create = (name: string) =>
      `create ${name} hash:net family ${fam} hashsize 1024 maxelem ${Math.max(65536, s.elements.length * 2)} -exist`
    const target = existing.has(s.name) ? `${s.name}-t` : s.name
    lines.push(create(target), `flush ${target}`)
    for (const e of ipsetElements(s)) lines.push(`add ${target} ${e}`)
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : ''
}

/** Swaps staged contents into the sets that existed, one atomic swap each, and drops the stage. */
export function renderIpsetSwap(sets: readonly NamedSet[], existing: ReadonlySet<string>): string {
  const lines = sets
    .filter((s) => existing.has(s.name))
    .flatMap((s) => [`swap ${s.name}-t ${s.name}`, `destroy ${s.name}-t`])
  return lines.length > 0 ? `${lines.join('\n')}\n` : ''
}

/** `ipset restore` input destroying sets of ours that are no longer referenced. */
export function renderIpsetDestroy(names: readonly string[]): string {
  const ours = names.filter(isOurIpset)
  return ours.length > 0 ? `${ours.map((n) => `destroy ${n}`).join('\n')}\n` : ''
}

/** ipset element changes for a peer change: O(changed), not O(set size). */
export function renderIpsetDelta(
  changes: readonly { set: string; add: readonly string[]; remove: readonly string[] }[],
): string {
  const out: string[] = []
  for (const c of changes) {
    for (const e of c.remove) out.push(`del ${c.set} ${e} -exist`)
    for (const e of c.add) out.push(`add ${c.set} ${e} -exist`)
  }
  return out.length > 0 ? `${out.join('\n')}\n` : ''
}
