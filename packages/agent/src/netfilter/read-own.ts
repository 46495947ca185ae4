import type { Backend, IpsetHeader, NamedSet, Ruleset, Table } from '@palisade/firewall'
import {
  findTable,
  isCountIpset,
  NFT_TABLE,
  parseIpsetHeaders,
  parseIpsetSave,
  nftJsonParser,
  parseIptablesSave,
  parseNftJson,
  RulesetParseError,
  withoutCountMembers,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { CommandError, runChecked } from '../exec.js'
import { lastParse } from './last-parse.js'

/**
 * Our table and ipsets as last listed whole, parsed once while they stay the same (and a set
 * listed again as it was, not parsed again).
 */
const parseOwnTable = lastParse(nftJsonParser())
const parseOwnIpsets = lastParse(parseIpsetSave)

/**
 * Reads only what a drift check needs, which is far cheaper than the whole host: our nftables
 * table, or the iptables filter tables (our chains and hooks live there) and the ipsets.
 * `elements: false` leaves out set contents (a terse listing: sets of 100,000 addresses cost
 * a second to list, their names nothing); the result then says `elementsOmitted`. `signal`
 * ends the tools still running when it aborts (the read then rejects). On iptables, `families`
 * lists only those filter tables (both by default).
 */
export async function readOwn(
  run: Runner,
  backend: Backend,
  opts: {
    elements?: boolean
    signal?: AbortSignal
    families?: readonly ('ip' | 'ip6')[]
  } = {},
): Promise<Ruleset> {
  const elements = opts.elements ?? true
  const signal = opts.signal && { signal: opts.signal }
  if (backend === 'nftables') {
    // nft 1.0.6 fetches every element of the table's sets for `list table`, even terse (2 s at
    // 100,000 peers); a terse `list ruleset` fetches none (50 ms), so that is read and our
    // table taken from it.
    const r = await run(
      'nft',
      elements ? ['-j', 'list', 'table', 'inet', NFT_TABLE] : ['-t', '-j', 'list ruleset'],
      signal,
    )
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr))
        return { tables: [], ipsets: [], ...(!elements && { elementsOmitted: true }) }
      throw new CommandError(`nft -j list table inet ${NFT_TABLE}`, r)
    }
    const tables = elements ? parseOwnTable(r.stdout) : parseNftJson(r.stdout)
    return {
      tables: elements ? tables : tables.filter((t) => t.family === 'inet' && t.name === NFT_TABLE),
      ipsets: [],
      ...(!elements && { elementsOmitted: true }),
    }
  }
  const [tables, sets] = await Promise.all([
    readIptablesFilter(run, backend, opts),
    runChecked(run, 'ipset', elements ? ['save'] : ['list', '-n'], signal),
  ])
  if (!elements) return terseIptables(tables, sets.split('\n').filter(Boolean))
  return { tables, ipsets: parseOwnIpsets(withoutCountMembers(sets)) }
}

/**
 * What a read without set contents finds on iptables, from listings already taken: both
 * families' `iptables-save -t filter` (IPv4 then IPv6) and `ipset list -t`.
 */
export function terseIptablesFrom(
  backend: Exclude<Backend, 'nftables'>,
  saves: readonly [string, string],
  ipsetHeaders: string,
): Ruleset {
  return terseIptables(
    filterTablesFrom(backend, FAMILIES, saves),
    parseIpsetHeaders(ipsetHeaders).map((h) => h.name),
  )
}

/**
 * A read without set contents where only the filter tables of `families` can have changed since
 * `known` was read (another process's change on iptables-nft that touched nothing else, as its
 * event told): those are listed, and the ipsets' names (a set may have been destroyed once the
 * change left it unreferenced); the other family's table is `known`'s.
 */
export async function readIptablesChanged(
  run: Runner,
  backend: Exclude<Backend, 'nftables'>,
  known: readonly Table[],
  families: ReadonlySet<'ip' | 'ip6'>,
): Promise<Ruleset> {
  const fresh = await readOwn(run, backend, {
    elements: false,
    families: FAMILIES.filter((f) => families.has(f)),
  })
  const tables = FAMILIES.flatMap((f) =>
    (families.has(f) ? fresh.tables : known).filter((t) => t.family === f),
  )
  return { ...fresh, tables }
}

/** Our tables, and the ipsets by name: their family is not known then, and not compared. */
function terseIptables(tables: Table[], ipsetNames: readonly string[]): Ruleset {
  return {
    tables,
    ipsets: ipsetNames.map((name) => ({
      name,
      family: 4,
      elements: [],
      ...(isCountIpset(name) && { counts: true }),
    })),
    elementsOmitted: true,
  }
}

/**
 * Our nftables table without rules and set contents: its chains (with hooks, priorities and
 * policies) and its sets (names and types), in one nft run. nft 1.0.6 fetches every set
 * element for any listing of a table or a chain, but not for these two (terse): they cost the
 * same at any set size.
 */
export async function readNftStructure(run: Runner): Promise<Table | undefined> {
  // Two commands in one argument (nft joins its arguments into one input): with -j, nft opens
  // `-f -` as /dev/stdin, which fails on the socket a Node child gets for stdin.
  const out = await runChecked(run, 'nft', ['-t', '-j', 'list chains inet; list sets inet'])
  // One JSON document per listing, a line each.
  const items = out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((doc) => nftItems(doc))
  const ours = items.filter((i) => {
    const o = i.chain ?? i.set
    return o?.table === NFT_TABLE && o.family === 'inet'
  })
  if (ours.length === 0) return undefined
  const doc = { nftables: [{ table: { family: 'inet', name: NFT_TABLE } }, ...ours] }
  return findTable(
    { tables: parseNftJson(JSON.stringify(doc)), ipsets: [] },
    'nft',
    'inet',
    NFT_TABLE,
  )
}

type NftItem = { chain?: Record<string, unknown>; set?: Record<string, unknown> }

function nftItems(text: string): NftItem[] {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new RulesetParseError('nft -j', `not JSON (${(e as Error).message})`)
  }
  const list = (doc as { nftables?: unknown }).nftables
  if (!Array.isArray(list)) throw new RulesetParseError('nft -j', 'expected an "nftables" array')
  return list.filter((i): i is NftItem => typeof i === 'object' && i !== null)
}

const SAVE = { ip: 'iptables', ip6: 'ip6tables' } as const
const FAMILIES = ['ip', 'ip6'] as const

/** The iptables filter tables of `families` (both by default): our chains and hooks, no ipsets. */
export async function readIptablesFilter(
  run: Runner,
  backend: Exclude<Backend, 'nftables'>,
  opts: { readonly signal?: AbortSignal; readonly families?: readonly ('ip' | 'ip6')[] } = {},
): Promise<Table[]> {
  const variant = backend === 'iptables-legacy' ? 'legacy' : 'nft'
  const { signal, families = FAMILIES } = opts
  const saves = await Promise.all(
    families.map((f) =>
      runChecked(run, `${SAVE[f]}-${variant}-save`, ['-t', 'filter'], signal && { signal }),
    ),
  )
  return filterTablesFrom(backend, families, saves)
}

/** The filter tables of `families` from their `iptables-save -t filter` listings, in order. */
function filterTablesFrom(
  backend: Exclude<Backend, 'nftables'>,
  families: readonly ('ip' | 'ip6')[],
  saves: readonly string[],
): Table[] {
  return families.flatMap((f, i) => parseIptablesSave(saves[i] ?? '', f, backend).tables)
}

/** Every ipset's header and entry count (`ipset list -t`): no members, however many. */
export async function readIpsetHeaders(run: Runner): Promise<IpsetHeader[]> {
  return parseIpsetHeaders(await runChecked(run, 'ipset', ['list', '-t']))
}

/** One ipset with its members, or undefined where it does not exist or is not an address set. */
export async function readIpset(run: Runner, name: string): Promise<NamedSet | undefined> {
  const r = await run('ipset', ['save', name])
  if (r.code !== 0) {
    if (/does not exist/.test(r.stderr)) return undefined
    throw new CommandError(`ipset save ${name}`, r)
  }
  return parseIpsetSave(r.stdout).find((s) => s.name === name)
}
