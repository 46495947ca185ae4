import type { Ruleset, Table } from '@palisade/firewall'
import {
  isIptablesNftTable,
  nftJsonParser,
  parseIpsetSave,
  parseIptablesSave,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { runChecked, ToolMissingError } from '../exec.js'
import { lastParse } from './last-parse.js'

/**
 * The host's nftables ruleset and ipsets as last listed, parsed once while they stay the same
 * (and a set listed again as it was, not parsed again).
 */
const parseNft = lastParse(nftJsonParser())
const parseIpsets = lastParse(parseIpsetSave)

export interface HostRead {
  readonly ruleset: Ruleset
  /** Tools that are not installed: whatever they would show is absent from the ruleset. */
  readonly missingTools: readonly string[]
  /** Both iptables-legacy and nf_tables hold rules: packets pass both, a common surprise. */
  readonly mixedBackends: boolean
}

const FAMILIES = [
  ['ip', 'iptables'],
  ['ip6', 'ip6tables'],
] as const

/** Runs a reading command; a tool that is not installed reads as empty and is noted. */
async function readOrMissing(
  run: Runner,
  missing: string[],
  cmd: string,
  args: readonly string[],
): Promise<string> {
  try {
    return await runChecked(run, cmd, args)
  } catch (e) {
    if (!(e instanceof ToolMissingError)) throw e
    missing.push(cmd)
    return ''
  }
}

async function readIptables(
  run: Runner,
  variant: 'nft' | 'legacy',
  missing: string[],
): Promise<{ tables: Table[]; legacyPresent: boolean }> {
  const tables: Table[] = []
  let legacyPresent = false
  for (const [family, tool] of FAMILIES) {
    const text = await readOrMissing(run, missing, `${tool}-${variant}-save`, [])
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
 * Each tool's output must parse whole; a failing tool is an error, never a partial ruleset.
 * Only a tool that is not installed at all is skipped (and named in `missingTools`).
 */
export async function readHost(run: Runner): Promise<HostRead> {
  const missing: string[] = []
  const nftText = await readOrMissing(run, missing, 'nft', ['-j', 'list', 'ruleset'])
  const nftTables = nftText ? parseNft(nftText) : []
  const native = nftTables.filter((t) => !isIptablesNftTable(t))
  const hasIptNft = native.length !== nftTables.length
  const ipt = hasIptNft
    ? await readIptables(run, 'nft', missing)
    : { tables: [], legacyPresent: false }
  const legacy = await readIptables(run, 'legacy', missing)
  const legacyWithRules = legacy.tables.filter((t) =>
    t.chains.some((c) => c.rules.length > 0 || !c.base),
  )
  const ipsets = parseIpsets(await readOrMissing(run, missing, 'ipset', ['save']))
  return {
    ruleset: { tables: [...native, ...ipt.tables, ...legacy.tables], ipsets },
    missingTools: missing,
    mixedBackends: legacyWithRules.length > 0 && (hasIptNft || native.length > 0),
  }
}
