import type { NamedSet, Ruleset, Table } from '@palisade/firewall'
import {
  isIptablesNftTable,
  parseIpsetSave,
  parseIptablesSave,
  parseNftJson,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked } from '../exec.js'

export interface HostRead {
  readonly ruleset: Ruleset
  /** Both iptables-legacy and nf_tables hold rules: packets pass both, a common surprise. */
  readonly mixedBackends: boolean
}

const FAMILIES = [
  ['ip', 'iptables'],
  ['ip6', 'ip6tables'],
] as const

async function readIptables(
  run: Runner,
  variant: 'nft' | 'legacy',
): Promise<{ tables: Table[]; legacyPresent: boolean }> {
  const tables: Table[] = []
  let legacyPresent = false
  for (const [family, tool] of FAMILIES) {
    const text = await runChecked(run, `${tool}-${variant}-save`, [])
    const parsed = parseIptablesSave(
      text,
      family,
      variant === 'nft' ? 'iptables-nft' : 'iptables-legacy',
    )
    tables.push(...parsed.tables)
    legacyPresent ||= parsed.legacyTablesPresent
  }
  return { tables, legacyPresent }
}

/**
 * Reads everything netfilter holds: native nftables tables through `nft -j`, iptables-nft
 * tables through iptables-nft-save (nft cannot show their xt matches), legacy tables and ipsets.
 * Each tool's output must parse whole; a failure is an error, never a partial ruleset.
 */
export async function readHost(run: Runner): Promise<HostRead> {
  const nftTables = parseNftJson(await runChecked(run, 'nft', ['-j', 'list', 'ruleset']))
  const native = nftTables.filter((t) => !isIptablesNftTable(t))
  const hasIptNft = native.length !== nftTables.length
  const ipt = hasIptNft ? await readIptables(run, 'nft') : { tables: [], legacyPresent: false }
  const legacy = await readIptables(run, 'legacy')
  const legacyWithRules = legacy.tables.filter((t) =>
    t.chains.some((c) => c.rules.length > 0 || !c.base),
  )
  const ipsets: NamedSet[] = parseIpsetSave(await runChecked(run, 'ipset', ['save']))
  return {
    ruleset: { tables: [...native, ...ipt.tables, ...legacy.tables], ipsets },
    mixedBackends: legacyWithRules.length > 0 && (hasIptNft || native.length > 0),
  }
}
