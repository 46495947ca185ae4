/**
 * PostgreSQL's flow store, a partition per day of `last_seen` (see db/flow-partition-ddl.ts):
 * partitions made before their day comes (and at once for a summary dated on a day without one),
 * and retention that drops whole days instead of deleting rows. SQLite has none of this.
 */
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import {
  createPartition,
  dayOf,
  dayOfPartition,
  daysFrom,
  partitionName,
} from '../db/flow-partition-ddl.js'
import type { Database } from '../db/schema.js'
import { isPostgres } from './db.js'

/** The days made ahead of time: today and the next two, so midnight never waits on DDL. */
const DAYS_AHEAD = 3
/** Serialises servers making partitions (two making one day's would collide in the catalog). */
const PARTITION_LOCK = 0x70616c66

/**
 * The days each store was seen to have, and until when that is trusted: every batch of
 * summaries asks, and the answer changes only when retention drops a day past it (a summary for
 * such a day, within this time, fails and is sent again by its agent).
 */
const known = new WeakMap<Kysely<Database>, Map<string, number>>()
const TRUSTED_MS = 60_000

/** Makes the partitions of `days` that do not exist yet; on SQLite, nothing. */
export async function ensureFlowPartitions(
  db: Kysely<Database>,
  days: Iterable<string>,
): Promise<void> {
  if (!isPostgres(db)) return
  const seen = known.get(db) ?? new Map<string, number>()
  known.set(db, seen)
  const t = Date.now()
  const ask = [...new Set(days)].filter((d) => (seen.get(d) ?? 0) < t)
  if (ask.length === 0) return
  const names = ask.map(partitionName)
  const { rows } = await sql<{ name: string }>`select name from unnest(${names}::text[]) as name
    where to_regclass(name) is null`.execute(db)
  if (rows.length > 0)
    await db.transaction().execute(async (tx) => {
      await sql`select pg_advisory_xact_lock(${PARTITION_LOCK})`.execute(tx)
      for (const { name } of rows) await createPartition(dayOfPartition(name) as string).execute(tx)
    })
  for (const d of ask) seen.set(d, t + TRUSTED_MS)
}

/** The partitions for today and the days just ahead: called at start and by housekeeping. */
export const prepareFlowPartitions = (db: Kysely<Database>, now: Date): Promise<void> =>
  ensureFlowPartitions(db, daysFrom(dayOf(now), DAYS_AHEAD))

interface Partition {
  readonly name: string
  readonly day: string
  /** The planner's row count; negative when the partition was never analysed. */
  readonly estimate: number
}

async function partitions(db: Kysely<Database>): Promise<Partition[]> {
  const { rows } = await sql<{ name: string; estimate: number }>`
    select c.relname as name, c.reltuples::float8 as estimate
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'flow_summaries'::regclass`.execute(db)
  return rows
    .flatMap((r) => {
      const day = dayOfPartition(r.name)
      return day ? [{ name: r.name, day, estimate: Number(r.estimate) }] : []
    })
    .sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0))
}

const countOf = async (db: Kysely<Database>, name: string) =>
  Number(
    (await sql<{ n: string }>`select count(*) as n from ${sql.id(name)}`.execute(db)).rows[0]?.n,
  )

async function drop(db: Kysely<Database>, p: Partition): Promise<number> {
  const n = await countOf(db, p.name)
  await sql`drop table if exists ${sql.id(p.name)}`.execute(db)
  known.get(db)?.delete(p.day)
  return n
}

/**
 * Retention by day: a day whose every summary is older than `maxAgeDays` is dropped (so one may
 * be kept up to a day longer than that). Over `maxRows`, the oldest days are dropped, and only
 * the day that straddles the limit loses its oldest rows one by one. The count is the planner's
 * estimate until that is within a tenth of the limit (counting millions of rows each minute
 * would cost more than it saves); then exact.
 */
export async function prunePartitions(
  db: Kysely<Database>,
  maxAgeDays: number,
  maxRows: number,
  now: Date,
): Promise<number> {
  const oldestKept = dayOf(new Date(now.getTime() - maxAgeDays * 86_400_000))
  let deleted = 0
  const kept: Partition[] = []
  for (const p of await partitions(db)) {
    if (p.day < oldestKept) deleted += await drop(db, p)
    else kept.push(p)
  }
  let estimate = 0
  for (const p of kept) estimate += p.estimate >= 0 ? p.estimate : await countOf(db, p.name)
  if (estimate < maxRows * 0.9) return deleted
  let newer = 0
  for (const p of kept.reverse()) {
    if (newer >= maxRows) {
      deleted += await drop(db, p)
      continue
    }
    const n = await countOf(db, p.name)
    const excess = newer + n - maxRows
    if (excess > 0) {
      const r = await sql`delete from ${sql.id(p.name)} where ctid in (select ctid
        from ${sql.id(p.name)} order by last_seen, id limit ${excess})`.execute(db)
      deleted += Number(r.numAffectedRows ?? 0)
    }
    newer += n
  }
  return deleted
}
