import type { Desired } from './ours.js'
import { renderIptablesSpec } from './render-iptables.js'
import type { Chain, Hook, Rule, Ruleset, Table } from './ruleset.js'

const HOOK_OF: Record<string, Hook> = { INPUT: 'input', OUTPUT: 'output', FORWARD: 'forward' }
const withText = (r: Rule): Rule => ({ ...r, text: renderIptablesSpec(r) })

/**
 * What the kernel holds after a perfect apply of `d`, as the parsers read it back: iptables
 * rules carry their text, our ipsets are there, and each built-in chain holds what `builtin`
 * puts around our hook (by default, only the hook).
 */
export function liveRuleset(
  d: Desired,
  builtin: (family: string, chain: string, hook: Rule) => Rule[] = (_f, _c, h) => [h],
): Ruleset {
  if (d.backend === 'nftables') return { tables: d.tables, ipsets: [] }
  const tables: Table[] = d.tables.map((t) => {
    const builtins: Chain[] = d.hooks
      .filter((h) => h.family === t.family)
      .map((h) => ({
        name: h.chain,
        base: { type: 'filter', hook: HOOK_OF[h.chain] ?? 'input', priority: 0, policy: 'accept' },
        rules: builtin(t.family, h.chain, withText(h.rule)),
      }))
    const ours = t.chains.map((c) => ({ ...c, rules: c.rules.map(withText) }))
    return { ...t, chains: [...builtins, ...ours] }
  })
  return { tables, ipsets: d.ipsets }
}

/**
 * What a ruleset holds, as the diff compares it: on iptables-nft, what a commit left is known
 * from what it wrote (filterAfterRestore), in our rules' words and order of chains, where the
 * tool lists its own (quotes, `--ctstate` in the kernel's order, chains by name).
 */
export const asDiffed = (rs: Ruleset): Ruleset => ({
  ...rs,
  tables: rs.tables.map((t) => ({
    ...t,
    chains: [...t.chains]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => ({ ...c, rules: c.rules.map(({ text: _, ...r }) => r) })),
  })),
})
