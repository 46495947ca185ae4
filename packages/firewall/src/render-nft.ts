import { renderNftCount, renderNftCounterSets } from './flow-count.js'
import type { Desired } from './ours.js'
import { CLOSED_TABLE, isOurTable, NFT_TABLE } from './ours.js'
import {
  byte,
  cidr,
  exactElement,
  iface,
  int32,
  logPrefix,
  nftName,
  oneOf,
  ourCommentText,
  port,
  portRanges,
  RenderError,
  setElement,
  u16,
} from './render-grammar.js'
import type {
  BaseChain,
  Chain,
  CtState,
  IpFamily,
  Match,
  NamedSet,
  Rule,
  Verdict,
} from './ruleset.js'

/** Tokens inside quotes are already held to a grammar without quotes or escapes. */
const quote = (s: string) => `"${s}"`
const braced = (items: readonly string[]) =>
  items.length === 1 ? (items[0] ?? '') : `{ ${items.join(', ')} }`
const L4: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp', 136: 'udplite' }
const CT_STATES: readonly CtState[] = ['established', 'related', 'new', 'invalid', 'untracked']
const FAMILIES = [4, 6] as const
const ip = (family: unknown) => (oneOf('address family', family, FAMILIES) === 4 ? 'ip' : 'ip6')
const side = (dir: unknown, src: string, dst: string) =>
  oneOf('direction', dir, ['src', 'dst']) === 'src' ? src : dst
const not = (negate: boolean | undefined) => (negate ? ' !=' : '')

function l4(field: string, proto: unknown): string {
  const name = typeof proto === 'number' ? L4[proto] : undefined
  if (!name) throw new RenderError(field, proto, 'ports need TCP, UDP, SCTP or UDP-Lite')
  return name
}

function renderMatch(m: Match): string {
  switch (m.kind) {
    case 'ct_state':
      if (m.states.length === 0) throw new RenderError('ct state', '', 'needs at least one state')
      return `ct state ${m.states.map((s) => oneOf('ct state', s, CT_STATES)).join(',')}`
    case 'nfproto':
      return `meta nfproto ipv${oneOf('nfproto', m.family, FAMILIES)}`
    case 'iface': {
      const key =
        oneOf('interface direction', m.dir, ['in', 'out']) === 'in' ? 'iifname' : 'oifname'
      return `${key}${not(m.negate)} ${quote(iface('interface', m.name))}`
    }
    case 'addr': {
      const field = `${ip(m.family)} ${side(m.dir, 'saddr', 'daddr')}${not(m.negate)}`
      if (m.set !== undefined) return `${field} @${nftName('set', m.set)}`
      const c = m.cidrs ?? []
      if (c.length === 0) throw new RenderError('address', '', 'needs a set or an address')
      return `${field} ${braced(c.map((x) => cidr('address', x, m.family)))}`
    }
    case 'proto':
      return `meta l4proto${not(m.negate)} ${byte('protocol', m.proto)}`
    case 'port': {
      const ranges = portRanges('port', m.ranges).map(([a, b]) => (a === b ? a : `${a}-${b}`))
      return `${l4('port protocol', m.proto)} ${side(m.dir, 'sport', 'dport')}${not(m.negate)} ${braced(ranges)}`
    }
    case 'addr_port': {
      const proto = l4('port lookup protocol', m.proto)
      return `${ip(m.family)} ${side(m.dir, 'saddr', 'daddr')} . ${proto} ${side(m.dir, 'sport', 'dport')} @${nftName('set', m.set)}`
    }
    case 'icmp': {
      const p = oneOf('icmp family', m.family, FAMILIES) === 4 ? 'icmp' : 'icmpv6'
      const code = m.code !== undefined ? ` ${p} code ${byte('icmp code', m.code)}` : ''
      return `${p} type ${byte('icmp type', m.type)}${code}`
    }
    case 'opaque':
      throw new RenderError('match', m.text, 'we only read it as text and cannot write it')
    default:
      throw new RenderError('match', (m as { kind: unknown }).kind, 'is not a match we write')
  }
}

function renderVerdict(v: Verdict): string {
  switch (v.kind) {
    case 'jump':
    case 'goto':
      return `${v.kind} ${nftName('jump target', v.target)}`
    case 'opaque':
      throw new RenderError('verdict', v.text, 'we only read it as text and cannot write it')
    default:
      return oneOf('verdict', v.kind, ['accept', 'drop', 'reject', 'return'])
  }
}

export function renderNftRule(r: Rule): string {
  const parts = r.matches.map(renderMatch)
  const count = r.count && renderNftCount(r.count)
  if (count) parts.push(count.before)
  parts.push('counter')
  if (count) parts.push(count.after)
  if (r.log) {
    const { prefix, group, snaplen, threshold } = r.log
    parts.push(
      `log prefix ${quote(logPrefix('log prefix', prefix))} group ${u16('log group', group)} snaplen ${u16('log snaplen', snaplen)} queue-threshold ${u16('log queue threshold', threshold)}`,
    )
  }
  if (r.verdict) parts.push(renderVerdict(r.verdict))
  if (r.comment !== undefined) parts.push(`comment ${quote(ourCommentText('comment', r.comment))}`)
  return parts.join(' ')
}

/** One element as a set of its kind takes it. */
function renderElement(
  s: Pick<NamedSet, 'withPort' | 'exact'> | undefined,
  e: string,
  family?: IpFamily,
): string {
  return s?.exact === true && s.withPort !== true
    ? exactElement('set element', e, family)
    : setElement('set element', e, family, s === undefined ? undefined : s.withPort === true)
}

function renderSet(s: NamedSet): string {
  const family = oneOf('set family', s.family, FAMILIES)
  const elements = s.elements.map((e) => renderElement(s, e, family))
  const list = elements.length > 0 ? ` elements = { ${elements.join(', ')} };` : ''
  const name = nftName('set', s.name)
  if (s.withPort) return `  set ${name} { type ipv${family}_addr . inet_service;${list} }`
  if (s.exact) return `  set ${name} { type ipv${family}_addr;${list} }`
  return `  set ${name} { type ipv${family}_addr; flags interval;${list} }`
}

function renderBase(b: BaseChain): string {
  const hook = oneOf('hook', b.hook, ['prerouting', 'input', 'forward', 'output', 'postrouting'])
  const policy = oneOf('chain policy', b.policy, ['accept', 'drop'])
  return `type ${oneOf('chain type', b.type, ['filter'])} hook ${hook} priority ${int32('priority', b.priority)}; policy ${policy};`
}

function renderChain(c: Chain): string {
  const lines = [`  chain ${nftName('chain', c.name)} {`]
  if (c.base) lines.push(`    ${renderBase(c.base)}`)
  for (const r of c.rules) lines.push(`    ${renderNftRule(r)}`)
  lines.push('  }')
  return lines.join('\n')
}

/**
 * One `nft -f` transaction that replaces our table whole: declaring the table first makes the
 * delete succeed whether or not it exists, and the kernel applies all of it or none of it.
 * An empty desired state (idle) just removes the table.
 */
export function renderNftScript(d: Desired): string {
  const out = [`table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`]
  for (const t of d.tables) {
    if (!isOurTable(t)) throw new RenderError('table', `${t.family} ${t.name}`, 'is not ours')
    out.push(`table inet ${NFT_TABLE} {`)
    for (const s of t.sets) out.push(renderSet(s))
    if ((t.counters ?? []).length > 0) out.push(...renderNftCounterSets())
    for (const c of t.chains) out.push(renderChain(c))
    out.push('}')
  }
  return `${out.join('\n')}\n`
}

/**
 * Element-level changes to sets that already exist: the cheap path for a peer change. `sets`
 * (the desired ones) tell how each set takes its elements.
 */
export function renderNftSetDelta(
  changes: readonly { set: string; add: readonly string[]; remove: readonly string[] }[],
  sets: readonly NamedSet[] = [],
): string {
  const out: string[] = []
  for (const c of changes) {
    const kind = sets.find((s) => s.name === c.set)
    const elements = (list: readonly string[]) => list.map((e) => renderElement(kind, e)).join(', ')
    const set = nftName('set', c.set)
    if (c.remove.length > 0)
      out.push(`delete element inet ${NFT_TABLE} ${set} { ${elements(c.remove)} }`)
    if (c.add.length > 0) out.push(`add element inet ${NFT_TABLE} ${set} { ${elements(c.add)} }`)
  }
  return out.length > 0 ? `${out.join('\n')}\n` : ''
}

/**
 * One transaction that rebuilds the named chains of our table (and removes chains of ours that
 * are not wanted), leaving every set as it is: the repair for tampered rules and chains.
 * `existing` names the chains the kernel holds now.
 */
export function renderNftChains(
  d: Desired,
  chains: readonly string[],
  existing: ReadonlySet<string>,
): string {
  const table = d.tables.find(isOurTable)
  const out: string[] = []
  for (const name of chains) {
    const chain = `inet ${NFT_TABLE} ${nftName('chain', name)}`
    const want = table?.chains.find((c) => c.name === name)
    // Base chains cannot change hook or priority in place: drop and re-create them.
    if (existing.has(name)) out.push(`flush chain ${chain}`, `delete chain ${chain}`)
    if (!want) continue
    out.push(`add chain ${chain}${want.base ? ` { ${renderBase(want.base)} }` : ''}`)
    for (const r of want.rules) out.push(`add rule ${chain} ${renderNftRule(r)}`)
  }
  return out.length > 0 ? `${out.join('\n')}\n` : ''
}

/**
 * The table `--firewall-restore closed` leaves once everything else is flushed: inbound only
 * established traffic, loopback, the management ports, the DHCP clients and IPv6 neighbour
 * discovery pass.
 */
export function renderClosedScript(managementTcpPorts: readonly number[]): string {
  const ports = managementTcpPorts.map((p) => port('management port', p))
  return `${[
    `table inet ${CLOSED_TABLE} {`,
    '  chain input {',
    '    type filter hook input priority 0; policy drop;',
    '    ct state established,related accept',
    '    iifname "lo" accept',
    ...(ports.length > 0 ? [`    tcp dport { ${ports.join(', ')} } accept`] : []),
    '    udp dport { 68, 546 } accept',
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept',
    '  }',
    '}',
  ].join('\n')}\n`
}
