/**
 * Shared address sets: each large peer set once per org, by content id, however many host
 * policies name it (see `address-set-refs.ts` in the protocol). A set no policy names is released,
 * kept a while for the agents that still hold it to get a delta from, then deleted.
 */
import type { AddressSet, PolicyDoc } from '@palisade/model'
import { resolveSetRefs, setRefsOf } from '@palisade/protocol'
import { byChunk } from './collection.js'
import type { Db } from './db.js'

/** How long a set no policy names is kept for deltas: far longer than an agent takes to ask. */
export const RELEASED_SET_KEPT_MS = 10 * 60_000

/**
 * Stores the sets a recompute's policies name, in its transaction: the new ones written (once,
 * whichever server writes them first), the released ones in use again. Sets already stored and
 * in use cost one read of their ids, not a write of their addresses.
 */
export async function keepSets(
  tx: Db,
  org: number,
  sets: ReadonlyMap<string, AddressSet>,
): Promise<void> {
  const ids = [...sets.keys()]
  const stored = await byChunk(ids, (chunk) =>
    tx
      .selectFrom('address_sets')
      .select(['id', 'released_at'])
      .where('org_id', '=', org)
      .where('id', 'in', chunk)
      .execute(),
  )
  const have = new Map(stored.map((r) => [r.id, r.released_at]))
  // Released ones are written whole too, not just marked: a sweep on another server may be
  // deleting them this moment, and an upsert survives that where an update would not.
  const rows = ids
    .filter((id) => (have.get(id) ?? null) !== null || !have.has(id))
    .map((id) => ({ org_id: org, id, addresses: JSON.stringify(sets.get(id)), released_at: null }))
  for (let i = 0; i < rows.length; i += 500)
    await tx
      .insertInto('address_sets')
      .values(rows.slice(i, i + 500))
      .onConflict((oc) => oc.columns(['org_id', 'id']).doUpdateSet({ released_at: null }))
      .execute()
}

/** The stored text (`{"v4": [...], "v6": [...]}`) of each of these sets the org has. */
export async function setTexts(
  db: Db,
  org: number,
  ids: readonly string[],
): Promise<Map<string, string>> {
  const rows = await byChunk(ids, (chunk) =>
    db
      .selectFrom('address_sets')
      .select(['id', 'addresses'])
      .where('org_id', '=', org)
      .where('id', 'in', chunk)
      .execute(),
  )
  return new Map(rows.map((r) => [r.id, r.addresses]))
}

/**
 * A stored policy with its sets written out: for agents that do not resolve sets, and for people
 * (the API's view of a host policy, explanations). Text without references comes back as it is.
 */
export async function writtenOut(db: Db, org: number, text: string): Promise<string> {
  const doc = JSON.parse(text) as PolicyDoc
  const ids = setRefsOf(doc)
  if (ids.length === 0) return text
  const texts = await setTexts(db, org, ids)
  const sets = new Map([...texts].map(([id, t]) => [id, JSON.parse(t) as AddressSet]))
  return JSON.stringify(resolveSetRefs(doc, sets))
}

/**
 * Releases the sets no host policy of the org names (at `at`) and deletes those released before
 * `before`. Safe beside a recompute on another server: one that names a set again revives it in
 * its own transaction, and a deleted set is written again by the next one that names it.
 */
export async function sweepSets(
  tx: Db,
  org: number,
  at: string,
  before: string,
): Promise<{ released: number; deleted: number }> {
  const policies = await tx
    .selectFrom('host_policies')
    .select('set_ids')
    .where('org_id', '=', org)
    .execute()
  const named = new Set(policies.flatMap((p) => JSON.parse(p.set_ids) as string[]))
  const rows = await tx
    .selectFrom('address_sets')
    .select(['id', 'released_at'])
    .where('org_id', '=', org)
    .execute()
  const unnamed = rows.filter((r) => !named.has(r.id))
  const release = unnamed.filter((r) => r.released_at === null).map((r) => r.id)
  const expired = unnamed
    .filter((r) => r.released_at !== null && r.released_at < before)
    .map((r) => r.id)
  for (let i = 0; i < release.length; i += 500)
    await tx
      .updateTable('address_sets')
      .set({ released_at: at })
      .where('org_id', '=', org)
      .where('id', 'in', release.slice(i, i + 500))
      .where('released_at', 'is', null)
      .execute()
  for (let i = 0; i < expired.length; i += 500)
    await tx
      .deleteFrom('address_sets')
      .where('org_id', '=', org)
      .where('id', 'in', expired.slice(i, i + 500))
      .where('released_at', '<', before)
      .execute()
  return { released: release.length, deleted: expired.length }
}
