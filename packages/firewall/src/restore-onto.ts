import { countChainSpecs } from './flow-count-ipset.js'
import { RulesetParseError } from './parse-error.js'
import { parseIptablesSave } from './parse-iptables.js'
import type { Table, TableSource } from './ruleset.js'

/** The built-in chains iptables-save lists for the filter table, whether or not they exist. */
const FILTER_BUILTINS = ['INPUT', 'FORWARD', 'OUTPUT'] as const

/**
 * The filter table that an `iptables-restore --noflush` of `restore` (as renderIptablesRestore
 * writes it) leaves, committed onto `before` (what the table held: read, or known from the last
 * commit), as `iptables-save` would list it: the commit is one transaction that either happened
 * whole or failed, so what it left follows from what it met. Undefined where `restore` holds a
 * line this does not follow, or `before` a rule whose text is unknown, or a delete finds no rule
 * of its text (the commit would have failed): the table must then be read.
 * Pure: the output depends only on the arguments.
 */
export function filterAfterRestore(
  before: Table | undefined,
  family: 'ip' | 'ip6',
  source: Exclude<TableSource, 'nft'>,
  restore: string,
): Table | undefined {
  const chains = new Map<string, { policy: string; specs: string[] }>(
    FILTER_BUILTINS.map((c) => [c, { policy: 'ACCEPT', specs: [] }]),
  )
  for (const c of before?.chains ?? []) {
    const specs = c.countsInto !== undefined ? countChainSpecs(c.countsInto) : ruleTexts(c.rules)
    if (!specs) return undefined
    chains.set(c.name, { policy: c.base ? c.base.policy.toUpperCase() : '-', specs })
  }
  const lines = restore.split('\n').filter((l) => l !== '')
  if (lines[0] !== '*filter' || lines.at(-1) !== 'COMMIT') return undefined
  for (const line of lines.slice(1, -1)) {
    const declared = /^:(\S+) - \[0:0\]$/.exec(line)
    if (declared?.[1]) {
      // Declaring a chain with --noflush makes it, or empties it where it is.
      chains.set(declared[1], { policy: chains.get(declared[1])?.policy ?? '-', specs: [] })
      continue
    }
    const op = /^(-[ADIFX]) (\S+)(?: (1))?(?: (.+))?$/.exec(line)
    const chain = op?.[2] && chains.get(op[2])
    if (!op || !chain) return undefined
    const [, verb, name = '', first, spec] = op
    if (verb === '-A' && spec && !first) chain.specs.push(spec)
    else if (verb === '-I' && spec && first) chain.specs.unshift(spec)
    else if (verb === '-D' && spec && !first) {
      const at = chain.specs.indexOf(spec)
      if (at < 0) return undefined
      chain.specs.splice(at, 1)
    } else if (verb === '-F' && !spec && !first) chain.specs = []
    else if (verb === '-X' && !spec && !first && chain.specs.length === 0) chains.delete(name)
    else return undefined
  }
  const text = [
    '*filter',
    ...[...chains].map(([name, c]) => `:${name} ${c.policy} [0:0]`),
    ...[...chains].flatMap(([name, c]) => c.specs.map((s) => `-A ${name} ${s}`)),
    'COMMIT',
  ].join('\n')
  try {
    return parseIptablesSave(text, family, source).tables[0]
  } catch (e) {
    if (e instanceof RulesetParseError) return undefined
    throw e
  }
}

function ruleTexts(rules: Table['chains'][number]['rules']): string[] | undefined {
  const texts: string[] = []
  for (const r of rules) {
    if (r.text === undefined) return undefined
    texts.push(r.text)
  }
  return texts
}
