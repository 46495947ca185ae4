import type { BuiltinChain, Desired, Plan, Ruleset } from '@palisade/firewall'
import {
  diff,
  findHooks,
  findTable,
  IPSET_PREFIX,
  IPT_PREFIX,
  planApply,
  renderIpsetDelta,
  renderIpsetDestroy,
  renderIpsetStage,
  renderIpsetSwap,
  renderIptablesRestore,
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
 * Brings the kernel to `desired`, given what it holds now (`actual`, read just before).
 * nftables: one `nft -f` transaction. iptables: ipsets first (the rules refer to them), then one
 * `iptables-restore --noflush` commit per family, then the staged set contents are swapped in
 * and unused ipsets destroyed. A failed commit thus leaves the old rules and old sets intact.
 * Returns the plan it carried out.
 */
export async function applyDesired(
  run: Runner,
  desired: Desired,
  actual: Ruleset,
  opts: ApplyOptions,
): Promise<Plan> {
  const drifts = diff(desired, actual)
  const plan = opts.modeChanged ? { kind: 'full' as const } : planApply(desired, drifts)
  if (plan.kind === 'none') return plan
  if (desired.backend === 'nftables') {
    const script = plan.kind === 'sets' ? renderNftSetDelta(plan.changes) : renderNftScript(desired)
    await runChecked(run, 'nft', ['-f', '-'], { stdin: script })
    return plan
  }
  if (plan.kind === 'sets') {
    await runChecked(run, 'ipset', ['restore'], { stdin: renderIpsetDelta(plan.changes) })
    return plan
  }
  const existing = new Set(actual.ipsets.map((s) => s.name))
  const stage = renderIpsetStage(desired.ipsets, existing)
  if (stage) await runChecked(run, 'ipset', ['restore'], { stdin: stage })
  const variant = desired.backend === 'iptables-legacy' ? 'legacy' : 'nft'
  for (const family of ['ip', 'ip6'] as const) {
    const have = findTable(actual, desired.backend, family, 'filter')
    const hooks = findHooks(have)
    const wantChains = new Set(
      desired.tables.find((t) => t.family === family)?.chains.map((c) => c.name),
    )
    const firstHook = (chain: string) => hooks.find((h) => h.chain === chain)?.index
    // Exclusive: foreign rules placed before our hook are overwritten (spec section 3).
    const foreignToDelete =
      desired.mode === 'exclusive'
        ? BUILTIN.flatMap((chain) => {
            const rules = have?.chains.find((c) => c.name === chain)?.rules ?? []
            const stop = firstHook(chain) ?? 0
            return rules.slice(0, stop).map((r) => ({ family, chain, spec: r.text ?? '' }))
          })
        : []
    const text = renderIptablesRestore(desired, family, {
      hooksFound: hooks.flatMap((h) =>
        BUILTIN.includes(h.chain as BuiltinChain)
          ? [{ family, chain: h.chain as BuiltinChain, index: h.index, spec: h.rule.text ?? '' }]
          : [],
      ),
      modeChanged: opts.modeChanged,
      foreignToDelete,
      staleChains: (have?.chains ?? [])
        .filter((c) => c.name.startsWith(IPT_PREFIX) && !wantChains.has(c.name))
        .map((c) => ({ family, chain: c.name })),
    })
    const args = ['--noflush', ...(variant === 'legacy' ? ['--wait', '5'] : [])]
    await runChecked(run, `${TOOLS[family]}-${variant}-restore`, args, { stdin: text })
  }
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
