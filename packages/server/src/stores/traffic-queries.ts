/**
 * Async traffic queries (Explorer): their parameters, state and result. The result is kept as
 * the JSON text of the flow records, sent as it is.
 */
import type { Selectable, Updateable } from 'kysely'
import { sql } from 'kysely'
import type { Database } from '../db/schema.js'
import type { FlowRecord } from '../traffic/flow-match.js'
import type { Doc } from '../validate.js'
import type { StoredCollection } from './collection.js'
import { countOf } from './collection.js'
import type { Db } from './db.js'

type QueryRecord = Selectable<Database['traffic_queries']>
/** A query with its parameters read; its result stays text until it is needed. */
export interface TrafficQueryRow extends Omit<QueryRecord, 'query_parameters'> {
  readonly query_parameters: Doc
}

const decode = (r: QueryRecord): TrafficQueryRow => ({
  ...r,
  query_parameters: JSON.parse(r.query_parameters) as Doc,
})

/** The flow records of a completed query. */
export const flowRecordsOf = (result: string) => JSON.parse(result) as FlowRecord[]

export async function insertQuery(
  db: Db,
  q: { id: string; org: number; parameters: Doc; createdBy: string; at: string },
): Promise<void> {
  await db
    .insertInto('traffic_queries')
    .values({
      id: q.id,
      org_id: q.org,
      status: 'queued',
      query_parameters: JSON.stringify(q.parameters),
      result: null,
      error: null,
      rules: null,
      matches_count: 0,
      flows_count: 0,
      created_by: q.createdBy,
      created_at: q.at,
      updated_at: q.at,
    })
    .execute()
}

export async function findQuery(
  db: Db,
  org: number,
  id: string,
): Promise<TrafficQueryRow | undefined> {
  const r = await db
    .selectFrom('traffic_queries')
    .selectAll()
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  return r && decode(r)
}

/** The org's queries, newest first; only the rows sent are read (their results stay behind). */
export function queriesOf(db: Db, org: number): StoredCollection<TrafficQueryRow> {
  const query = db.selectFrom('traffic_queries').where('org_id', '=', org)
  return {
    count: () => countOf(query),
    read: async (limit) =>
      (
        await query
          .select([
            'id',
            'org_id',
            'status',
            'query_parameters',
            'error',
            'rules',
            'matches_count',
            'flows_count',
            'created_by',
            'created_at',
            'updated_at',
          ])
          .select(sql<string | null>`null`.as('result'))
          .orderBy('created_at', 'desc')
          .limit(limit)
          .execute()
      ).map(decode),
  }
}

/** Moves a query that is still queued or working on (a cancelled one stays cancelled). */
export async function advanceQuery(
  db: Db,
  id: string,
  values: Pick<
    Updateable<Database['traffic_queries']>,
    'status' | 'error' | 'matches_count' | 'flows_count'
  > & {
    records?: readonly FlowRecord[]
  },
  at: string,
): Promise<void> {
  const { records, ...rest } = values
  await db
    .updateTable('traffic_queries')
    .set({ ...rest, ...(records && { result: JSON.stringify(records) }), updated_at: at })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'working'])
    .execute()
}

/** Stores a query's records with their draft policy decisions added. */
export async function saveDraftDecisions(
  db: Db,
  id: string,
  records: readonly FlowRecord[],
  at: string,
): Promise<void> {
  await db
    .updateTable('traffic_queries')
    .set({ result: JSON.stringify(records), rules: 'completed', updated_at: at })
    .where('id', '=', id)
    .execute()
}

export async function cancelQuery(db: Db, id: string, at: string): Promise<void> {
  await db
    .updateTable('traffic_queries')
    .set({ status: 'cancelled', updated_at: at })
    .where('id', '=', id)
    .execute()
}

export async function deleteQuery(db: Db, id: string): Promise<void> {
  await db.deleteFrom('traffic_queries').where('id', '=', id).execute()
}
