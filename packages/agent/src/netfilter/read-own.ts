import type { Backend, NamedSet, Ruleset } from '@palisade/firewall'
import { NFT_TABLE, parseIpsetSave, parseIptablesSave, parseNftJson } from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { CommandError, runChecked } from '../exec.js'

/**
 * Reads only what a drift check needs, which is far cheaper than the whole host: our nftables
 * table, or the iptables filter tables (our chains and hooks live there) and the ipsets.
 * `elements: false` leaves out set contents (a terse listing: sets of 100,000 addresses cost
 * a second to list, their names nothing); the result then says `elementsOmitted`.
 */
export async function readOwn(
  run: Runner,
  backend: Backend,
  opts: { elements?: boolean } = {},
): Promise<Ruleset> {
  const elements = opts.elements ?? true
  if (backend === 'nftables') {
    // nft 1.0.6 fetches every element of the table's sets for `list table`, even terse (2 s at
    // 100,000 peers); a terse `list ruleset` fetches none (50 ms), so that is read and our
    // table taken from it.
    const r = await run(
      'nft',
      elements ? ['-j', 'list', 'table', 'inet', NFT_TABLE] : ['-j', '-t', 'list', 'ruleset'],
    )
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr))
        return { tables: [], ipsets: [], ...(!elements && { elementsOmitted: true }) }
      throw new CommandError(`nft -j list table inet ${NFT_TABLE}`, r)
    }
    const tables = parseNftJson(r.stdout)
    return {
      tables: elements ? tables : tables.filter((t) => t.family === 'inet' && t.name === NFT_TABLE),
      ipsets: [],
      ...(!elements && { elementsOmitted: true }),
    }
  }
  const variant = backend === 'iptables-legacy' ? 'legacy' : 'nft'
  const [v4, v6, sets] = await Promise.all([
    runChecked(run, `iptables-${variant}-save`, ['-t', 'filter']),
    runChecked(run, `ip6tables-${variant}-save`, ['-t', 'filter']),
    runChecked(run, 'ipset', elements ? ['save'] : ['list', '-n']),
  ])
  // `ipset list -n` gives names only; the family is not known then, and not compared.
  const ipsets: NamedSet[] = elements
    ? parseIpsetSave(sets)
    : sets
        .split('\n')
        .filter(Boolean)
        .map((name) => ({ name, family: 4, elements: [] }))
  return {
    tables: [
      ...parseIptablesSave(v4, 'ip', backend).tables,
      ...parseIptablesSave(v6, 'ip6', backend).tables,
    ],
    ipsets,
    ...(!elements && { elementsOmitted: true }),
  }
}
