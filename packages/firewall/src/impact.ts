import type { CoexistenceMode } from '@palisade/model'
import type { Backend, Desired } from './ours.js'
import { isHookIntoOurs, isOurChain, isOurTable } from './ours.js'
import type { RuleRef } from './packet-path.js'
import type { Chain, Hook, IpFamily, Match, Rule, Ruleset, Table } from './ruleset.js'
import { tableKey } from './ruleset.js'

/**
 * How a foreign rule can change what our policy decides (spec section 6):
 * bypass: a foreign accept before us lets through what we would block (iptables only);
 * override: a foreign drop after us blocks what we allow;
 * pre-empt: a foreign drop before us hides traffic from us;
 * shadowed: a foreign rule after our final verdict is never reached (exclusive, iptables).
 */
export type ImpactKind = 'bypass' | 'override' | 'pre-empt' | 'shadowed'

export interface Impact {
  readonly kind: ImpactKind
  readonly hook: Hook
  readonly family: IpFamily
  readonly verdict: 'accept' | 'drop' | 'reject'
  /** The foreign rule, or the chain (index -1) whose drop policy is responsible. */
  readonly rule: RuleRef
  /** The traffic the rule applies to, in nft-like words. */
  readonly traffic: string
}

const HOOKS: readonly Hook[] = ['input', 'output', 'forward']

export function describeMatches(matches: readonly Match[]): string {
  if (matches.length === 0) return 'all traffic'
  return matches
    .map((m) => {
      switch (m.kind) {
        case 'ct_state':
          return `ct state ${m.states.join(',')}`
        case 'nfproto':
          return `ipv${m.family}`
        case 'iface':
          return `${m.dir === 'in' ? 'iif' : 'oif'} ${m.negate ? '!= ' : ''}${m.name}`
        case 'addr':
          return `${m.dir === 'src' ? 'from' : 'to'} ${m.negate ? 'not ' : ''}${m.set !== undefined ? `@${m.set}` : (m.cidrs ?? []).join(',')}`
        case 'proto':
          return `proto ${m.negate ? '!= ' : ''}${m.proto}`
        case 'port':
          return `${m.proto === 6 ? 'tcp' : m.proto === 17 ? 'udp' : `proto ${m.proto}`} ${m.dir === 'src' ? 'sport' : 'dport'} ${m.negate ? '!= ' : ''}${m.ranges.map(([a, b]) => (a === b ? a : `${a}-${b}`)).join(',')}`
        case 'icmp':
          return `icmp${m.family === 6 ? 'v6' : ''} type ${m.type}${m.code !== undefined ? ` code ${m.code}` : ''}`
        case 'addr_port':
          return `${m.dir === 'src' ? 'from' : 'to'} address and port in @${m.set}`
        case 'opaque':
          return `(${m.text})`
      }
    })
    .join(' ')
}

interface Terminal {
  readonly rule: Rule
  readonly ref: RuleRef
  readonly verdict: 'accept' | 'drop' | 'reject'
  /** Matches of the jumps that led here, ANDed with the rule's own. */
  readonly via: readonly Match[]
}

/** Rules that end evaluation (accept, drop, reject), following jumps within the table. */
function terminals(
  table: Table,
  chain: Chain,
  rules: readonly Rule[],
  offset: number,
  via: readonly Match[],
  seen: Set<string>,
): Terminal[] {
  const out: Terminal[] = []
  rules.forEach((r, i) => {
    const v = r.verdict
    const ref: RuleRef = {
      table: tableKey(table),
      chain: chain.name,
      index: offset + i,
      text: r.text ?? describeMatches(r.matches),
      ours: false,
    }
    if (v && (v.kind === 'accept' || v.kind === 'drop' || v.kind === 'reject'))
      out.push({ rule: r, ref, verdict: v.kind, via })
    if (v && (v.kind === 'jump' || v.kind === 'goto') && !seen.has(v.target)) {
      const target = table.chains.find((c) => c.name === v.target)
      if (target)
        out.push(
          ...terminals(
            table,
            target,
            target.rules,
            0,
            [...via, ...r.matches],
            new Set([...seen, v.target]),
          ),
        )
    }
  })
  return out
}

const covers = (t: Table, f: IpFamily) =>
  t.family === 'inet' || t.family === (f === 4 ? 'ip' : 'ip6')

/**
 * For every hook and family where our chains sit, the foreign rules that can change the
 * outcome of our policy, and how. Non-disruptive foreign rules are not listed.
 */
export function analyseImpact(
  rs: Ruleset,
  ctx: { backend: Backend; mode: CoexistenceMode },
): Impact[] {
  const out: Impact[] = []
  const exclusive = ctx.mode === 'exclusive'
  for (const family of [4, 6] as const) {
    for (const hook of HOOKS) {
      const bases = rs.tables
        .flatMap((table) =>
          covers(table, family)
            ? table.chains
                .filter((c) => c.base?.hook === hook && c.base.type !== 'nat')
                .map((chain) => ({ table, chain }))
            : [],
        )
        .sort((a, b) => (a.chain.base?.priority ?? 0) - (b.chain.base?.priority ?? 0))
      let ourPriority: number | undefined
      let hookChain: { table: Table; chain: Chain; index: number } | undefined
      for (const b of bases) {
        if (ctx.backend === 'nftables' && isOurTable(b.table)) ourPriority = b.chain.base?.priority
        if (
          ctx.backend !== 'nftables' &&
          b.table.source === ctx.backend &&
          b.table.name === 'filter'
        ) {
          const index = b.chain.rules.findIndex((r) => isHookIntoOurs(b.table, r))
          if (index >= 0) {
            hookChain = { ...b, index }
            ourPriority = b.chain.base?.priority
          }
        }
      }
      if (ourPriority === undefined) continue
      const add = (kind: ImpactKind, t: Terminal) =>
        out.push({
          kind,
          hook,
          family,
          verdict: t.verdict,
          rule: t.ref,
          traffic: describeMatches([...t.via, ...t.rule.matches]),
        })
      for (const b of bases) {
        if (isOurChain(b.table, b.chain.name)) continue
        const priority = b.chain.base?.priority ?? 0
        const policyDrop: Terminal | undefined =
          b.chain.base?.policy === 'drop'
            ? {
                rule: { matches: [], verdict: { kind: 'drop' } },
                ref: {
                  table: tableKey(b.table),
                  chain: b.chain.name,
                  index: -1,
                  text: 'policy drop',
                  ours: false,
                },
                verdict: 'drop',
                via: [],
              }
            : undefined
        if (hookChain && b.chain === hookChain.chain) {
          const before = terminals(
            b.table,
            b.chain,
            b.chain.rules.slice(0, hookChain.index),
            0,
            [],
            new Set(),
          )
          const after = terminals(
            b.table,
            b.chain,
            b.chain.rules.slice(hookChain.index + 1),
            hookChain.index + 1,
            [],
            new Set(),
          )
          for (const t of before) add(t.verdict === 'accept' ? 'bypass' : 'pre-empt', t)
          for (const t of [...after, ...(policyDrop ? [policyDrop] : [])]) {
            if (exclusive) add('shadowed', t)
            else if (t.verdict !== 'accept') add('override', t)
          }
          continue
        }
        // Another base chain: an accept there never ends our evaluation, a drop is final.
        const drops = [
          ...terminals(b.table, b.chain, b.chain.rules, 0, [], new Set()),
          ...(policyDrop ? [policyDrop] : []),
        ].filter((t) => t.verdict !== 'accept')
        for (const t of drops) add(priority < ourPriority ? 'pre-empt' : 'override', t)
      }
    }
  }
  return out
}

/**
 * Whether a foreign rule after ours can drop what `desired` allows: the flow reporter's
 * question (count in the kernel, or log and watch conntrack confirm each connection). On
 * nftables it is judged with our table as `desired` has it, so a survey read before our table
 * existed, or while another mode placed our chains elsewhere, cannot answer for the wrong
 * position. On iptables our hooks sit among the foreign rules: until a survey shows them where
 * `desired` puts them, nothing after us can be ruled out.
 */
export function dropsAfterUs(survey: Ruleset, desired: Desired): boolean {
  const ctx = { backend: desired.backend, mode: desired.mode }
  const overrides = (rs: Ruleset) => analyseImpact(rs, ctx).some((i) => i.kind === 'override')
  if (desired.backend === 'nftables')
    return overrides({
      ...survey,
      tables: [...survey.tables.filter((t) => !isOurTable(t)), ...desired.tables],
    })
  // Where each hook of ours is in its built-in chain: hooks placed first are where `desired`
  // puts them only once all are first (a survey from another mode shows them elsewhere). Our
  // own chains jump to ours too (into the counting chains): those are not hooks.
  const at = survey.tables
    .filter((t) => t.source === desired.backend)
    .flatMap((t) =>
      t.chains.flatMap((c) =>
        c.base ? c.rules.flatMap((r, i) => (isHookIntoOurs(t, r) ? [i] : [])) : [],
      ),
    )
  const placed = at.length > 0 && (desired.hookPosition === 'last' || at.every((i) => i === 0))
  return !placed || overrides(survey)
}
