import { diff, findHooks } from './diff.js'
import type { BuiltinChain, Desired } from './ours.js'
import { BUILTIN_CHAINS, isOurChain, isOurIpset, isOurTable, NFT_TABLE } from './ours.js'
import type { Plan } from './plan.js'
import { planApply } from './plan.js'
import { isNftName } from './render-grammar.js'
import type { IptablesApplyContext } from './render-iptables.js'
import {
  renderIpsetDelta,
  renderIpsetDestroy,
  renderIpsetStage,
  renderIpsetSwap,
  renderIptablesRestore,
} from './render-iptables.js'
import { renderNftChains, renderNftScript, renderNftSetDelta } from './render-nft.js'
import type { Ruleset, Table } from './ruleset.js'
import { findTable } from './ruleset.js'

export interface ApplyOptions {
  /** The mode differs from the last applied one: a non-primary hook is then placed last again. */
  readonly modeChanged: boolean
}

/** One tool run: the command, its arguments and what it reads on stdin. */
export interface ToolCommand {
  readonly cmd: string
  readonly args: readonly string[]
  readonly stdin: string
  /** It prints `ipset list -t` (every set's entry count) once its changes are made. */
  readonly countsAfter?: true
}

export interface ApplyScript {
  readonly plan: Plan
  /** Run in order; each must succeed before the next (a failure leaves what ran before). */
  readonly commands: readonly ToolCommand[]
}

const IPTABLES_TOOLS = { ip: 'iptables', ip6: 'ip6tables' } as const

/**
 * What bringing the kernel to `desired` takes, given what it holds now (`actual`, read just
 * before): the cheapest plan that gets there (see planApply) and the commands that carry it out.
 * nftables: one `nft -f` transaction (the whole table, only some chains, or set elements).
 * iptables: new set contents are staged first (the rules refer to the sets), then one
 * `iptables-restore --noflush` commit per family (for a rules repair, per family that drifted),
 * then the staged contents are swapped in and unused ipsets destroyed; a failed commit thus
 * leaves the old rules and old sets intact.
 * Pure: the output depends only on the arguments.
 */
export function applyScript(desired: Desired, actual: Ruleset, opts: ApplyOptions): ApplyScript {
  const cheapest = opts.modeChanged ? null : planApply(desired, diff(desired, actual))
  // A chain in our table under a name we never write (someone else made it) can only go with
  // the whole table: a full replacement removes it without naming it.
  const nameless =
    cheapest?.kind === 'rules' &&
    desired.backend === 'nftables' &&
    !cheapest.chains.every(isNftName)
  const plan: Plan = cheapest === null || nameless ? { kind: 'full' } : cheapest
  if (plan.kind === 'none') return { plan, commands: [] }
  if (desired.backend === 'nftables') {
    const have = findTable(actual, 'nft', 'inet', NFT_TABLE)
    const script =
      plan.kind === 'sets'
        ? renderNftSetDelta(plan.changes, desired.tables.find(isOurTable)?.sets)
        : plan.kind === 'rules'
          ? renderNftChains(desired, plan.chains, new Set(have?.chains.map((c) => c.name)))
          : renderNftScript(desired)
    return { plan, commands: [{ cmd: 'nft', args: ['-f', '-'], stdin: script }] }
  }
  const ipset = (stdin: string): ToolCommand[] =>
    stdin ? [{ cmd: 'ipset', args: ['restore'], stdin }] : []
  /** An ipset run that then lists each set's entry count, for the read-back to check. */
  const counted = (stdin: string): ToolCommand => ({
    cmd: 'ipset',
    args: ['restore'],
    stdin: `${stdin}list -t\n`,
    countsAfter: true,
  })
  if (plan.kind === 'sets') {
    // ipset commits line by line: the same run then lists each set's entry count, for the
    // read-back to check without another process.
    return { plan, commands: [counted(renderIpsetDelta(plan.changes))] }
  }
  // A rules-only repair leaves the sets alone: they are intact, and may be large.
  const withSets = plan.kind === 'full'
  const existing = new Set(actual.ipsets.map((s) => s.name))
  const stage = withSets ? renderIpsetStage(desired.ipsets, existing) : ''
  const wanted = new Set(desired.ipsets.map((s) => s.name))
  const unused = actual.ipsets.filter((s) => isOurIpset(s.name) && !wanted.has(s.name))
  // Staged contents are swapped in and unused sets destroyed in one run after the commit.
  const last = withSets
    ? renderIpsetSwap(desired.ipsets, existing) + renderIpsetDestroy(unused.map((s) => s.name))
    : ''
  const commands = ipset(stage)
  const legacy = desired.backend === 'iptables-legacy'
  for (const family of ['ip', 'ip6'] as const) {
    // A rules repair commits only the families that drifted: the others hold what we want.
    if (plan.kind === 'rules' && !plan.tables.includes(`${family} filter`)) continue
    const have = findTable(actual, desired.backend, family, 'filter')
    commands.push({
      cmd: `${IPTABLES_TOOLS[family]}-${legacy ? 'legacy' : 'nft'}-restore`,
      args: ['--noflush', ...(legacy ? ['--wait', '5'] : [])],
      stdin: renderIptablesRestore(desired, family, iptablesContext(desired, have, family, opts)),
    })
  }
  // That run then lists the entry counts after the last of our changes, so the read-back needs
  // no run of its own; with nothing to swap, a full apply's run lists them alone. (Listed by the
  // stage, they would miss what another process changes during the rules commit.)
  if (withSets) commands.push(counted(last))
  return { plan, commands }
}

/** What the iptables transaction for one family depends on in the live table. */
function iptablesContext(
  desired: Desired,
  have: Table | undefined,
  family: 'ip' | 'ip6',
  opts: ApplyOptions,
): IptablesApplyContext {
  const hooks = findHooks(have)
  const wantChains = new Set(
    desired.tables.find((t) => t.family === family)?.chains.map((c) => c.name),
  )
  const builtin = (chain: string): chain is BuiltinChain =>
    (BUILTIN_CHAINS as readonly string[]).includes(chain)
  const firstHook = (chain: string) => hooks.find((h) => h.chain === chain)?.index
  return {
    hooksFound: hooks.flatMap((h) =>
      builtin(h.chain) ? [{ family, chain: h.chain, index: h.index, spec: h.rule.text ?? '' }] : [],
    ),
    modeChanged: opts.modeChanged,
    // Exclusive: foreign rules placed before our hook are overwritten (spec section 3).
    foreignToDelete:
      desired.mode === 'exclusive'
        ? BUILTIN_CHAINS.flatMap((chain) => {
            const rules = have?.chains.find((c) => c.name === chain)?.rules ?? []
            return rules
              .slice(0, firstHook(chain) ?? 0)
              .map((r) => ({ family, chain, spec: r.text ?? '' }))
          })
        : [],
    staleChains: have
      ? have.chains
          .filter((c) => isOurChain(have, c.name) && !wantChains.has(c.name))
          .map((c) => ({ family, chain: c.name }))
      : [],
  }
}
