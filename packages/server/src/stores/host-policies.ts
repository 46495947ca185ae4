/**
 * Host policies: the policy each managed workload should enforce, as computed, with a hash of
 * what it enforces. Agents long-poll them; the text is sent as stored, its large peer sets by id
 * (see address-sets.ts).
 */
import type { HostPolicy, Workload } from '@palisade/model'
import type { Database } from '../db/schema.js'
import { writtenOut } from './address-sets.js'
import { byChunk } from './collection.js'
import type { Db } from './db.js'
import { MODEL_COLUMNS, modelKey, modelOf } from './workloads.js'

/** A host policy as stored: its hash and its JSON text. */
export interface StoredPolicy {
  readonly hash: string
  readonly text: string
}

/** The stored text of a host policy, to send to its agent as it is (no parse and re-serialise). */
export async function storedPolicy(db: Db, workloadId: string): Promise<StoredPolicy | undefined> {
  return db
    .selectFrom('host_policies')
    .select(['hash', 'policy as text'])
    .where('workload_id', '=', workloadId)
    .executeTakeFirst()
}

/** A workload's host policy with its sets written out, read. */
export async function currentPolicy(
  db: Db,
  org: number,
  workloadId: string,
): Promise<{ hash: string; policy: HostPolicy } | undefined> {
  const r = await storedPolicy(db, workloadId)
  return r
    ? { hash: r.hash, policy: JSON.parse(await writtenOut(db, org, r.text)) as HostPolicy }
    : undefined
}

/** The ids of the address sets a workload's host policy names (none without a policy). */
export async function namedSets(db: Db, workloadId: string): Promise<Set<string>> {
  const r = await db
    .selectFrom('host_policies')
    .select('set_ids')
    .where('workload_id', '=', workloadId)
    .executeTakeFirst()
  return new Set(r ? (JSON.parse(r.set_ids) as string[]) : [])
}

/** The stored hash of each of these workloads' host policies. */
export async function policyHashes(
  db: Db,
  workloadIds: readonly string[],
): Promise<Map<string, string>> {
  const rows = await byChunk(workloadIds, (chunk) =>
    db
      .selectFrom('host_policies')
      .select(['workload_id', 'hash'])
      .where('workload_id', 'in', chunk)
      .execute(),
  )
  return new Map(rows.map((h) => [h.workload_id, h.hash]))
}

/** A workload of the org as a recompute sees it: its model's makings and its stored hash. */
export interface Host {
  readonly id: string
  readonly managed: boolean
  readonly hash: string | null
  /** Why the last recompute could not use its row (stored JSON), or null. */
  readonly policyError: string | null
  /** What its model is made of: equal keys make equal models (see `modelKey`). */
  readonly key: string
  /** Its model, read from the row (only where needed: most rows do not change between runs). */
  model(): Workload
}

/** Every workload of the org with the hash of its stored host policy. */
export async function hostsOf(db: Db, org: number): Promise<Host[]> {
  const rows = await db
    .selectFrom('workloads')
    .leftJoin('host_policies', 'host_policies.workload_id', 'workloads.id')
    .select([...MODEL_COLUMNS, 'workloads.managed', 'workloads.policy_error', 'host_policies.hash'])
    .where('workloads.org_id', '=', org)
    .execute()
  return rows.map((r) => ({
    id: r.id,
    managed: r.managed === 1,
    hash: r.hash,
    policyError: r.policy_error,
    key: modelKey(r),
    model: () => modelOf(org, r),
  }))
}

/**
 * Writes host policies (inside the caller's transaction: one commit, and one fsync, for every
 * changed host, all or none); a thousand rows a statement (7,000 parameters, under both stores'
 * limits), not one each.
 */
export async function writePolicies(
  tx: Db,
  rows: readonly Database['host_policies'][],
): Promise<void> {
  for (let i = 0; i < rows.length; i += 1000)
    await tx
      .insertInto('host_policies')
      .values(rows.slice(i, i + 1000))
      .onConflict((oc) =>
        oc.column('workload_id').doUpdateSet((eb) => ({
          version: eb.ref('excluded.version'),
          hash: eb.ref('excluded.hash'),
          policy: eb.ref('excluded.policy'),
          set_ids: eb.ref('excluded.set_ids'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .execute()
}

/** Records why a recompute could not use a workload's row (null: it could again). */
export async function setPolicyError(
  tx: Db,
  workloadId: string,
  error: { reason: string; at: string } | null,
): Promise<void> {
  await tx
    .updateTable('workloads')
    .set({ policy_error: error && JSON.stringify(error) })
    .where('id', '=', workloadId)
    .execute()
}

/** The host policies changed after `since` (an ISO time), and when. */
export async function policiesChangedSince(
  db: Db,
  since: string,
): Promise<{ workload_id: string; updated_at: string }[]> {
  return db
    .selectFrom('host_policies')
    .select(['workload_id', 'updated_at'])
    .where('updated_at', '>', since)
    .execute()
}

export async function deleteHostPolicy(db: Db, workloadId: string): Promise<void> {
  await db.deleteFrom('host_policies').where('workload_id', '=', workloadId).execute()
}
