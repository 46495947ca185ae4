import type { Desired, IpsetHeader, NamedSet, Plan, Ruleset, Table } from '@palisade/firewall'
import {
  filterAfterRestore,
  findTable,
  isOurIpset,
  isOurTable,
  NFT_TABLE,
  parseIpsetHeaders,
} from '@palisade/firewall'
import type { Runner } from '../exec.js'
import { readIpset, readIpsetHeaders, readIptablesFilter, readNftStructure } from './read-own.js'

/**
 * Our objects after an apply, read back where the apply changed them and only as far as reading
 * costs less than the apply did; `before` (read, or verified, just before) stands for the rest.
 * The caller diffs the result against the desired state: anything but an empty diff is a failed
 * or partial apply. Reading everything back again cost as much as the apply itself (a set of
 * 100,000 addresses is a second to list), so each plan reads what tells its outcome:
 *
 * - set elements only: one atomic nft transaction, which the kernel acknowledged whole (a delete
 *   of an element that is not there fails it), is its own proof; ipset, which commits line by
 *   line, is checked by entry count (`ipset list -t`, no members, printed by the same run).
 * - rules and chains: the iptables rules are read back (`iptables-save`; on iptables-nft only
 *   the families the repair wrote, and none whose commit the change monitor reported: what it
 *   left then follows from what it met and wrote, see filterAfterRestore, and another process's
 *   change, before or after it, is the monitor's to report); nftables' chains with their hooks,
 *   priorities and policies (`list chains`: nft 1.0.6 lists no rule without fetching every set
 *   element first, so rules are taken from the transaction that wrote them).
 * - everything: as for rules, and each set's existence, type and (ipset) entry count; a set
 *   whose count differs from what was written is read whole, so the diff names what it lacks.
 *
 * What another process changes afterwards is the change monitor's and the periodic full
 * read-back's to find, as before.
 */
export async function verifyApplied(
  run: Runner,
  desired: Desired,
  before: Ruleset,
  /** What applyScript chose to bring `before` to `desired`, and was carried out. */
  plan: Plan,
  ran: {
    /** `ipset list -t` as the apply's last ipset run printed it after its changes, if it did. */
    readonly countsAfter?: string | undefined
    /**
     * The iptables-nft commits whose outcome the change monitor confirmed: each family's
     * restore text (see filterAfterRestore).
     */
    readonly committed?: Partial<Record<'ip' | 'ip6', string>>
  } = {},
): Promise<Ruleset> {
  const { countsAfter, committed } = ran
  if (plan.kind === 'none') return before
  if (desired.backend === 'nftables') {
    if (plan.kind === 'sets') return setsAsDesired(before, desired)
    const read = await readNftStructure(run)
    return {
      tables: read ? [nftFilled(read, desired, before, plan)] : [],
      ipsets: [],
      // A rules repair after a read without set contents knows no more of them than it did.
      ...(before.elementsOmitted && plan.kind === 'rules' && { elementsOmitted: true }),
    }
  }
  if (plan.kind === 'rules') {
    // Only the families the repair committed where another process's change to the others
    // sends an event (iptables-nft): they are as `before` held them, and a change to them since
    // `before` was read is the event's to report (the enforcer holds the events that come during
    // a repair, and looks again after it). iptables-legacy sends none, and its next look
    // compares with a signal taken after this: such a change would go unseen until the
    // backstop's full read.
    const families = (['ip', 'ip6'] as const).filter(
      (f) => desired.backend === 'iptables-legacy' || plan.tables.includes(`${f} filter`),
    )
    const read = await filterAfter(run, desired.backend, before, families, committed)
    const fresh = (t: Table) => read.find((r) => r.family === t.family && r.name === t.name)
    return {
      ...before,
      tables: [
        ...before.tables.map((t) => fresh(t) ?? t),
        ...read.filter((r) => !before.tables.some((t) => t.family === r.family)),
      ],
    }
  }
  const expected =
    plan.kind === 'sets'
      ? setsAsDesired(before, desired).ipsets
      : desired.ipsets.filter((s) => isOurIpset(s.name))
  // The counts the apply's ipset run printed after its changes; none printed, they are read.
  const printed = countsAfter === undefined ? [] : parseIpsetHeaders(countsAfter)
  const [tables, headers] = await Promise.all([
    plan.kind === 'sets'
      ? before.tables
      : filterAfter(run, desired.backend, before, ['ip', 'ip6'], committed),
    printed.length > 0 ? printed : readIpsetHeaders(run),
  ])
  return {
    tables,
    ipsets: await ipsetsCounted(run, headers, expected),
    ...(before.elementsOmitted && plan.kind === 'sets' && { elementsOmitted: true }),
  }
}

/**
 * The filter tables of `families` after their commits: known from what each commit met and
 * wrote where `committed` has its text (an nf_tables commit is one transaction, and another
 * process's change to the table, before or during it, sends the event that has the enforcer
 * read again), read where it has not or the text cannot tell.
 */
async function filterAfter(
  run: Runner,
  backend: Exclude<Desired['backend'], 'nftables'>,
  before: Ruleset,
  families: readonly ('ip' | 'ip6')[],
  committed: Partial<Record<'ip' | 'ip6', string>> | undefined,
): Promise<Table[]> {
  const known = families.map((f) => {
    const text = committed?.[f]
    return text === undefined
      ? undefined
      : filterAfterRestore(findTable(before, backend, f, 'filter'), f, backend, text)
  })
  const unknown = families.filter((_, i) => known[i] === undefined)
  const read =
    unknown.length > 0 ? await readIptablesFilter(run, backend, { families: unknown }) : []
  return families.flatMap((f, i) => known[i] ?? read.filter((t) => t.family === f))
}

/**
 * `rs` (what the kernel held) with `desired`'s lists in its sets (in tables and ipsets), once
 * the changes are made. A sets-only plan (applyScript's, from `rs`) means every difference was
 * a set's elements, and the changes are exactly what `rs` lacked of `desired` and held beyond
 * it: with them made, each set holds what `desired` lists. Its lists are taken as they are, in
 * our order, instead of a copy of 100,000 elements in the kernel's, so the next diff against
 * them is a look at their identity, and against a new desired state one ordered pass.
 */
function setsAsDesired(rs: Ruleset, desired: Desired): Ruleset {
  const want = new Map(
    [...(desired.tables.find(isOurTable)?.sets ?? []), ...desired.ipsets].map((s) => [s.name, s]),
  )
  const apply = (s: NamedSet): NamedSet => {
    const w = want.get(s.name)
    return w ? { ...s, elements: w.elements } : s
  }
  return {
    ...rs,
    tables: rs.tables.map((t) => (isOurTable(t) ? { ...t, sets: t.sets.map(apply) } : t)),
    ipsets: rs.ipsets.map(apply),
  }
}

/**
 * Our table as read (chains, sets) with the rules and set contents the apply wrote where it
 * wrote them (every chain and set for a full apply, the named chains for a rules repair), and
 * what `before` held elsewhere.
 */
function nftFilled(read: Table, desired: Desired, before: Ruleset, plan: Plan): Table {
  const want = desired.tables.find(isOurTable)
  const had = findTable(before, 'nft', 'inet', NFT_TABLE)
  const wrote = (chain: string) =>
    plan.kind === 'full' || (plan.kind === 'rules' && plan.chains.includes(chain))
  return {
    ...read,
    chains: read.chains.map((c) => ({
      ...c,
      rules: (wrote(c.name) ? want : had)?.chains.find((w) => w.name === c.name)?.rules ?? [],
    })),
    sets: read.sets.map((s) => ({
      ...s,
      elements:
        (plan.kind === 'full' ? want : had)?.sets.find((w) => w.name === s.name)?.elements ?? [],
    })),
  }
}

/**
 * The ipsets as their headers show them: ours with the elements expected where the entry count
 * agrees, read whole where it does not (or where we expected nothing of the set); others by
 * name only, as a terse read gives them.
 */
async function ipsetsCounted(
  run: Runner,
  headers: readonly IpsetHeader[],
  expected: readonly NamedSet[],
): Promise<NamedSet[]> {
  const want = new Map(expected.map((s) => [s.name, s]))
  return Promise.all(
    headers.map(async (h): Promise<NamedSet> => {
      const w = want.get(h.name)
      if (!isOurIpset(h.name)) return { name: h.name, family: h.family, elements: [] }
      if (w && h.type === 'hash:net' && w.elements.length === h.entries)
        return { ...w, family: h.family }
      // A counting set's entries are the kernel's counts: it is there, of its kind.
      if (w?.counts && h.counts) return { ...w, family: h.family }
      return (await readIpset(run, h.name)) ?? { name: h.name, family: h.family, elements: [] }
    }),
  )
}
