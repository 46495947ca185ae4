/**
 * PostgreSQL's flow store is partitioned by day of `last_seen` (declarative range partitions):
 * a query for recent traffic reads only recent days, and retention drops whole days. What the
 * partitions are called and hold is decided here, for the migration and the store alike. Pure.
 */
import type { RawBuilder } from 'kysely'
import { sql } from 'kysely'

const DAY_MS = 86_400_000
const DAY = /^\d{4}-\d{2}-\d{2}$/
const NAME = /^flow_summaries_d(\d{4})(\d{2})(\d{2})$/

/** The UTC day (YYYY-MM-DD) a time stamp falls in; times are ISO 8601, as stored. */
export const dayOf = (time: string | Date): string =>
  (typeof time === 'string' ? time : time.toISOString()).slice(0, 10)

/** The day after `day`. */
export const nextDay = (day: string): string =>
  new Date(Date.parse(`${day}T00:00:00.000Z`) + DAY_MS).toISOString().slice(0, 10)

/** The partition that holds the summaries whose last connection was on `day`. */
export function partitionName(day: string): string {
  if (!DAY.test(day)) throw new Error(`not a day (YYYY-MM-DD): ${JSON.stringify(day)}`)
  return `flow_summaries_d${day.replaceAll('-', '')}`
}

/** The day a partition holds, from its name; undefined for a table that is not a day's. */
export function dayOfPartition(name: string): string | undefined {
  const m = NAME.exec(name)
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined
}

/**
 * Makes `day`'s partition unless it exists. Its bounds compare as text: ISO times sort by time
 * under the "C" collation the partition key is declared with, and '2026-12-01' sorts before
 * every time of that day.
 */
export const createPartition = (day: string): RawBuilder<unknown> =>
  sql`create table if not exists ${sql.id(partitionName(day))} partition of flow_summaries
    for values from (${sql.lit(day)}) to (${sql.lit(nextDay(day))})`

/** The days from `from` on, `count` of them. */
export function daysFrom(from: string, count: number): string[] {
  const out = [from]
  while (out.length < count) out.push(nextDay(out[out.length - 1] as string))
  return out
}
