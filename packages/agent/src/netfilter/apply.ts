import type { BuiltinChain, Desired, Plan, Ruleset, Table } from '@palisade/firewall'
import {
  diff,
  findHooks,
  findTable,
  IPSET_PREFIX,
  IPT_PREFIX,
  NFT_TABLE,
  planApply,
  renderIpsetDelta,
  renderIpsetDestroy,
  renderIpsetStage,
  renderIpsetSwap,
  renderIptablesRestore,
  renderNftChains,
  renderNftScript,
  renderNftSetDelta,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'

export interface ApplyOptions {
  /** The mode differs from the last applied one: a non-primary hook is then placed last again. */
  readonly modeChanged: boolean
}

const BUILTIN: readonly BuiltinChain[] = ['INPUT', 'OUTPUT', 'FORWARD']
const TOOLS = { ip: 'iptables', ip6: 'ip6tables' } as const

/**
 * Brings the kernel to `desired`, given what it holds now (`actual`, read just before), with the
 * cheapest plan that gets there (see planApply).
 * nftables: one `nft -f` transaction (the whole table, only some chains, or set elements).
 * iptables: new set contents are staged first (the rules refer to the sets), then one
 * `iptables-restore --noflush` commit per family, then the staged contents are swapped in and
 * unused ipsets destroyed; a failed commit thus leaves the old rules and old sets intact.
 * Returns the plan it carried out.
 */
export async function applyDesired(
  run: Runner,
  desired: Desired,
  actual: Ruleset,
  opts: ApplyOptions,
): Promise<Plan> {
  const plan = opts.modeChanged
    ? { kind: 'full' as const }
    : planApply(desired, diff(desired, actual))
  if (plan.kind === 'none') return plan
  if (desired.backend === 'nftables') {
    const have = findTable(actual, 'nft', 'inet', NFT_TABLE)
    const script =
      plan.kind === 'sets'
        ? renderNftSetDelta(plan.changes)
        : plan.kind === 'rules'
          ? renderNftChains(desired, plan.chains, new Set(have?.chains.map((c) => c.name)))
          : renderNftScript(desired)
    await runChecked(run, 'nft', ['-f', '-'], { stdin: script })
    return plan
  }
  if (plan.kind === 'sets') {
    await runChecked(run, 'ipset', ['restore'], { stdin: renderIpsetDelta(plan.changes) })
    return plan
  }
  // A rules-only repair leaves the sets alone: they are intact, and may be large.
  const withSets = plan.kind === 'full'
  const existing = new Set(actual.ipsets.map((s) => s.name))
  const stage = withSets ? renderIpsetStage(desired.ipsets, existing) : ''
  if (stage) await runChecked(run, 'ipset', ['restore'], { stdin: stage })
  const variant = desired.backend === 'iptables-legacy' ? 'legacy' : 'nft'
  for (const family of ['ip', 'ip6'] as const) {
    const text = renderIptablesRestore(
      desired,
      family,
      applyContext(desired, findTable(actual, desired.backend, family, 'filter'), family, opts),
    )
    const args = ['--noflush', ...(variant === 'legacy' ? ['--wait', '5'] : [])]
    await runChecked(run, `${TOOLS[family]}-${variant}-restore`, args, { stdin: text })
  }
  if (!withSets) return plan
  const swap = renderIpsetSwap(desired.ipsets, existing)
  if (swap) await runChecked(run, 'ipset', ['restore'], { stdin: swap })
  const wanted = new Set(desired.ipsets.map((s) => s.name))
  const unused = actual.ipsets
    .filter((s) => s.name.startsWith(IPSET_PREFIX) && !wanted.has(s.name))
    .map((s) => s.name)
  const destroy = renderIpsetDestroy(unused)
  if (destroy) await runChecked(run, 'ipset', ['restore'], { stdin: destroy })
  return plan
}

/** What the iptables transaction for one family depends on in the live table. */
function applyContext(
  desired: Desired,
  have: Table | undefined,
  family: 'ip' | 'ip6',
  opts: ApplyOptions,
) {
  const hooks = findHooks(have)
  const wantChains = new Set(
    desired.tables.find((t) => t.family === family)?.chains.map((c) => c.name),
  )
  const firstHook = (chain: string) => hooks.find((h) => h.chain === chain)?.index
  return {
    hooksFound: hooks.flatMap((h) =>
      BUILTIN.includes(h.chain as BuiltinChain)
        ? [{ family, chain: h.chain as BuiltinChain, index: h.index, spec: h.rule.text ?? '' }]
        : [],
    ),
    modeChanged: opts.modeChanged,
    // Exclusive: foreign rules placed before our hook are overwritten (spec section 3).
    foreignToDelete:
      desired.mode === 'exclusive'
        ? BUILTIN.flatMap((chain) => {
            const rules = have?.chains.find((c) => c.name === chain)?.rules ?? []
            return rules
              .slice(0, firstHook(chain) ?? 0)
              .map((r) => ({ family, chain, spec: r.text ?? '' }))
          })
        : [],
    staleChains: (have?.chains ?? [])
      .filter((c) => c.name.startsWith(IPT_PREFIX) && !wantChains.has(c.name))
      .map((c) => ({ family, chain: c.name })),
  }
}
