import type { Backend, Ruleset } from '@palisade/firewall'
import { NFT_TABLE, parseIpsetSave, parseIptablesSave, parseNftJson } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { CommandError, runChecked } from '../exec.js'

/**
 * Reads only what a drift check needs, which is far cheaper than the whole host: our nftables
 * table, or the iptables filter tables (our chains and hooks live there) and the ipsets.
 */
export async function readOwn(run: Runner, backend: Backend): Promise<Ruleset> {
  if (backend === 'nftables') {
    const r = await run('nft', ['-j', 'list', 'table', 'inet', NFT_TABLE])
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return { tables: [], ipsets: [] }
      throw new CommandError(`nft -j list table inet ${NFT_TABLE}`, r)
    }
    return { tables: parseNftJson(r.stdout), ipsets: [] }
  }
  const variant = backend === 'iptables-legacy' ? 'legacy' : 'nft'
  const [v4, v6, sets] = await Promise.all([
    runChecked(run, `iptables-${variant}-save`, ['-t', 'filter']),
    runChecked(run, `ip6tables-${variant}-save`, ['-t', 'filter']),
    runChecked(run, 'ipset', ['save']),
  ])
  return {
    tables: [
      ...parseIptablesSave(v4, 'ip', backend).tables,
      ...parseIptablesSave(v6, 'ip6', backend).tables,
    ],
    ipsets: parseIpsetSave(sets),
  }
}
