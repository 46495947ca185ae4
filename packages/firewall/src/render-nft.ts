import type { Desired } from './ours.js'
import { CLOSED_TABLE, isOurTable, NFT_TABLE } from './ours.js'
import type { Chain, Match, NamedSet, Rule, Verdict } from './ruleset.js'

const quote = (s: string) => `"${s.replace(/["\\]/g, '')}"`
const ports = (ranges: readonly (readonly [number, number])[]) => {
  const one = ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`))
  return one.length === 1 ? (one[0] ?? '') : `{ ${one.join(', ')} }`
}
const L4: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp', 136: 'udplite' }

export class RenderError extends Error {}

function renderMatch(m: Match): string {
  switch (m.kind) {
    case 'ct_state':
      return `ct state ${m.states.join(',')}`
    case 'nfproto':
      return `meta nfproto ipv${m.family}`
    case 'iface':
      return `${m.dir === 'in' ? 'iifname' : 'oifname'}${m.negate ? ' !=' : ''} ${quote(m.name)}`
    case 'addr': {
      const field = `${m.family === 4 ? 'ip' : 'ip6'} ${m.dir === 'src' ? 'saddr' : 'daddr'}${m.negate ? ' !=' : ''}`
      if (m.set !== undefined) return `${field} @${m.set}`
      const c = m.cidrs ?? []
      return `${field} ${c.length === 1 ? c[0] : `{ ${c.join(', ')} }`}`
    }
    case 'proto':
      return `meta l4proto${m.negate ? ' !=' : ''} ${m.proto}`
    case 'port': {
      const l4 = L4[m.proto]
      if (!l4)
        throw new RenderError(
          `a port match needs TCP, UDP, SCTP or UDP-Lite, not protocol ${m.proto}`,
        )
      return `${l4} ${m.dir === 'src' ? 'sport' : 'dport'}${m.negate ? ' !=' : ''} ${ports(m.ranges)}`
    }
    case 'addr_port': {
      const l4 = L4[m.proto]
      if (!l4) throw new RenderError(`a port lookup needs TCP or UDP, not protocol ${m.proto}`)
      return `${m.family === 4 ? 'ip' : 'ip6'} ${m.dir === 'src' ? 'saddr' : 'daddr'} . ${l4} ${m.dir === 'src' ? 'sport' : 'dport'} @${m.set}`
    }
    case 'icmp': {
      const p = m.family === 4 ? 'icmp' : 'icmpv6'
      return `${p} type ${m.type}${m.code !== undefined ? ` ${p} code ${m.code}` : ''}`
    }
    case 'opaque':
      throw new RenderError(`cannot render a rule we only read as text: ${m.text}`)
  }
}

function renderVerdict(v: Verdict): string {
  switch (v.kind) {
    case 'jump':
    case 'goto':
      return `${v.kind} ${v.target}`
    case 'opaque':
      throw new RenderError(`cannot render verdict ${v.text}`)
    default:
      return v.kind
  }
}

export function renderNftRule(r: Rule): string {
  const parts = r.matches.map(renderMatch)
  parts.push('counter')
  if (r.log)
    parts.push(
      `log prefix ${quote(r.log.prefix)} group ${r.log.group} snaplen ${r.log.snaplen} queue-threshold ${r.log.threshold}`,
    )
  if (r.verdict) parts.push(renderVerdict(r.verdict))
  if (r.comment) parts.push(`comment ${quote(r.comment)}`)
  return parts.join(' ')
}

function renderSet(s: NamedSet): string {
  const elements = s.elements.length > 0 ? ` elements = { ${s.elements.join(', ')} };` : ''
  if (s.withPort) return `  set ${s.name} { type ipv${s.family}_addr . inet_service;${elements} }`
  return `  set ${s.name} { type ipv${s.family}_addr; flags interval;${elements} }`
}

function renderChain(c: Chain): string {
  const lines = [`  chain ${c.name} {`]
  if (c.base) {
    lines.push(
      `    type ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy ${c.base.policy};`,
    )
  }
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
    out.push(`table ${t.family} ${t.name} {`)
    for (const s of t.sets) out.push(renderSet(s))
    for (const c of t.chains) out.push(renderChain(c))
    out.push('}')
  }
  return `${out.join('\n')}\n`
}

/** Element-level changes to sets that already exist: the cheap path for a peer change. */
export function renderNftSetDelta(
  changes: readonly { set: string; add: readonly string[]; remove: readonly string[] }[],
): string {
  const out: string[] = []
  for (const c of changes) {
    if (c.remove.length > 0)
      out.push(`delete element inet ${NFT_TABLE} ${c.set} { ${c.remove.join(', ')} }`)
    if (c.add.length > 0) out.push(`add element inet ${NFT_TABLE} ${c.set} { ${c.add.join(', ')} }`)
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
    const want = table?.chains.find((c) => c.name === name)
    // Base chains cannot change hook or priority in place: drop and re-create them.
    if (existing.has(name))
      out.push(`flush chain inet ${NFT_TABLE} ${name}`, `delete chain inet ${NFT_TABLE} ${name}`)
    if (!want) continue
    const base = want.base
      ? ` { type ${want.base.type} hook ${want.base.hook} priority ${want.base.priority}; policy ${want.base.policy}; }`
      : ''
    out.push(`add chain inet ${NFT_TABLE} ${name}${base}`)
    for (const r of want.rules) out.push(`add rule inet ${NFT_TABLE} ${name} ${renderNftRule(r)}`)
  }
  return out.length > 0 ? `${out.join('\n')}\n` : ''
}

/**
 * The table `--firewall-restore closed` leaves once everything else is flushed: inbound only
 * established traffic, loopback, the management ports, the DHCP clients and IPv6 neighbour
 * discovery pass.
 */
export function renderClosedScript(managementTcpPorts: readonly number[]): string {
  const ports =
    managementTcpPorts.length > 0
      ? [`    tcp dport { ${managementTcpPorts.join(', ')} } accept`]
      : []
  return `${[
    `table inet ${CLOSED_TABLE} {`,
    '  chain input {',
    '    type filter hook input priority 0; policy drop;',
    '    ct state established,related accept',
    '    iifname "lo" accept',
    ...ports,
    '    udp dport { 68, 546 } accept',
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept',
    '  }',
    '}',
  ].join('\n')}\n`
}
