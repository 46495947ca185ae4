import type { RawBuilder, SelectQueryBuilder, SqlBool } from 'kysely'
import { sql } from 'kysely'

/** A collection the store filters and counts itself: only the rows sent are read. */
export interface StoredCollection<T> {
  count(): Promise<number>
  read(limit: number): Promise<T[]>
  /**
   * The same rows as `read`, in the same order, `size` at a time: for a collection that can be
   * large, so an async job never holds it whole.
   */
  pages?(size: number): AsyncIterable<T[]>
}

/** How many rows a filtered query matches (whatever it selects). */
export async function countOf<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
): Promise<number> {
  // The result type is lost to the generic database type; the row is `{ n }`.
  const row = (await query
    .clearSelect()
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()) as { n: number | string | bigint }
  return Number(row.n)
}

/** A text filter on a column: `exact`, or a case-insensitive substring. */
export interface TextFilter<C extends string> {
  readonly column: C
  readonly wanted: unknown
  readonly exact: boolean
}

/**
 * The text filter `Filters.text` (query/query-filters.ts) applies in memory, done by the store: `=` when
 * exact, else a case-insensitive substring (SQLite folds the case of ASCII letters only).
 */
export function textFilter({ column, wanted, exact }: TextFilter<string>): RawBuilder<SqlBool> {
  const w = typeof wanted === 'string' ? wanted : JSON.stringify(wanted)
  if (exact) return sql<SqlBool>`${sql.ref(column)} = ${w}`
  const pattern = `%${w.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`
}

/**
 * Reads rows for a long list of keys a chunk at a time, in parallel: one `in (...)` list stays
 * under both stores' limits on parameters.
 */
export async function byChunk<K, T>(
  keys: readonly K[],
  read: (chunk: K[]) => Promise<T[]>,
): Promise<T[]> {
  return (
    await Promise.all(
      Array.from({ length: Math.ceil(keys.length / 500) }, (_, i) =>
        read(keys.slice(i * 500, i * 500 + 500)),
      ),
    )
  ).flat()
}
