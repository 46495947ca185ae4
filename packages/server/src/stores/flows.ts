/** Flow summaries from agents: stored once each, pruned by age and count, summed for queries. */
import type { FlowSummaryUpload } from '@palisade/model'
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Database } from '../db/schema.js'
import type { AddressFilter } from '../traffic/address-filter.js'
import type { AggregatedFlow } from '../traffic/flow-merge.js'
import type { TrafficQuery } from '../traffic/query-parse.js'
import type { Db } from './db.js'
import { isPostgres } from './db.js'
import { prunePartitions } from './flow-partitions.js'

const CHUNK = 500

type FlowRow = Omit<Database['flow_summaries'], 'id'>

const rowOf = (org: number, workloadId: string, f: FlowSummaryUpload): FlowRow => ({
  uuid: f.uuid,
  org_id: org,
  workload_id: workloadId,
  direction: f.direction,
  src_ip: f.src_ip,
  dst_ip: f.dst_ip,
  src_port: f.src_port ?? null,
  port: f.port ?? null,
  proto: f.proto,
  icmp_type: f.icmp_type ?? null,
  icmp_code: f.icmp_code ?? null,
  policy_decision: f.policy_decision,
  rule_href: f.rule_href,
  num_connections: f.num_connections,
  first_seen: f.first_seen,
  last_seen: f.last_seen,
  dropped_downstream: f.dropped_downstream ? 1 : 0,
})

/** Each column of a PostgreSQL insert by `unnest`, with the type of its array. */
const PG_COLUMNS: readonly [keyof FlowRow, string][] = [
  ['uuid', 'text'],
  ['org_id', 'integer'],
  ['workload_id', 'text'],
  ['direction', 'text'],
  ['src_ip', 'text'],
  ['dst_ip', 'text'],
  ['src_port', 'integer'],
  ['port', 'integer'],
  ['proto', 'integer'],
  ['icmp_type', 'integer'],
  ['icmp_code', 'integer'],
  ['policy_decision', 'text'],
  ['rule_href', 'text'],
  ['num_connections', 'integer'],
  ['first_seen', 'text'],
  ['last_seen', 'text'],
  ['dropped_downstream', 'integer'],
]

/**
 * Stores summaries; one already stored (a re-sent batch: same uuid, and on PostgreSQL the same
 * last_seen) is left as it is. PostgreSQL takes a batch as one array per column (`unnest`): 17
 * parameters instead of 17 per summary, which at fleet volume is most of the insert's cost.
 */
export async function ingestFlows(
  db: Db,
  org: number,
  workloadId: string,
  list: readonly FlowSummaryUpload[],
): Promise<void> {
  if (list.length === 0) return
  const rows = list.map((f) => rowOf(org, workloadId, f))
  if (isPostgres(db)) {
    const arrays = PG_COLUMNS.map(([c, type]) => sql`${rows.map((r) => r[c])}::${sql.raw(type)}[]`)
    // No conflict target: the unique key is the uuid and last_seen (a partitioned table's
    // unique keys include its partition key).
    await sql`insert into flow_summaries (${sql.join(PG_COLUMNS.map(([c]) => sql.ref(c)))})
      select * from unnest(${sql.join(arrays)}) on conflict do nothing`.execute(db)
    return
  }
  for (let i = 0; i < rows.length; i += CHUNK)
    await db
      .insertInto('flow_summaries')
      .values(rows.slice(i, i + CHUNK))
      .onConflict((oc) => oc.column('uuid').doNothing())
      .execute()
}

export interface FlowRetention {
  /** Summaries whose last connection is older than this are deleted (default 30 days). */
  readonly maxAgeDays: number
  /** At most this many summaries are kept; the oldest go first (default 10,000,000). */
  readonly maxRows: number
}

export const DEFAULT_FLOW_RETENTION: FlowRetention = { maxAgeDays: 30, maxRows: 10_000_000 }

/**
 * Applies retention; returns how many summaries were deleted. PostgreSQL's store drops whole
 * days instead (see flow-partitions.ts).
 */
export async function pruneFlows(
  db: Kysely<Database>,
  r: FlowRetention,
  now: Date,
): Promise<number> {
  if (isPostgres(db)) return prunePartitions(db, r.maxAgeDays, r.maxRows, now)
  const cutoff = new Date(now.getTime() - r.maxAgeDays * 86_400_000).toISOString()
  const aged = await db
    .deleteFrom('flow_summaries')
    .where('last_seen', '<', cutoff)
    .executeTakeFirst()
  let deleted = Number(aged.numDeletedRows)
  const { n } = await db
    .selectFrom('flow_summaries')
    .select((e) => e.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  const excess = Number(n) - r.maxRows
  if (excess > 0) {
    // Ids grow with arrival: the lowest ids are the oldest summaries.
    const edge = await db
      .selectFrom('flow_summaries')
      .select('id')
      .orderBy('id')
      .offset(excess - 1)
      .limit(1)
      .executeTakeFirst()
    if (edge) {
      const r2 = await db.deleteFrom('flow_summaries').where('id', '<=', edge.id).executeTakeFirst()
      deleted += Number(r2.numDeletedRows)
    }
  }
  return deleted
}

/** What tells one flow from another in a query's answer: summaries sharing it are summed. */
const FLOW_KEY = [
  'direction',
  'src_ip',
  'dst_ip',
  'port',
  'proto',
  'icmp_type',
  'icmp_code',
  'policy_decision',
  'rule_href',
  'dropped_downstream',
] as const

/**
 * Sums the org's summaries in the time range over intervals, per reporting end (SQL does the
 * work). Every decision is read: the two ends' reports of a connection are merged before a
 * query's decision filter applies to the merged record.
 */
export async function aggregateFlows(
  db: Kysely<Database>,
  org: number,
  q: Pick<TrafficQuery, 'startDate' | 'endDate'>,
  ends?: AddressFilter,
): Promise<AggregatedFlow[]> {
  let query = db
    .selectFrom('flow_summaries')
    .select(FLOW_KEY)
    .select((e) => [
      sql<number>`sum(${e.ref('num_connections')})`.as('num_connections'),
      e.fn.min('first_seen').as('first_seen'),
      e.fn.max('last_seen').as('last_seen'),
    ])
    .where('org_id', '=', org)
    .where('last_seen', '>=', q.startDate)
    .where('first_seen', '<=', q.endDate)
  if (ends) {
    const pg = isPostgres(db)
    const oneOf = (column: 'src_ip' | 'dst_ip', set: ReadonlySet<string>) =>
      pg
        ? sql<boolean>`${sql.ref(column)} = any(${[...set]}::text[])`
        : sql<boolean>`${sql.ref(column)} in (select value from json_each(${JSON.stringify([...set])}))`
    const { op, src, dst } = ends
    query = query.where((e) =>
      op === 'or'
        ? e.or([oneOf('src_ip', src ?? new Set()), oneOf('dst_ip', dst ?? new Set())])
        : e.and([...(src ? [oneOf('src_ip', src)] : []), ...(dst ? [oneOf('dst_ip', dst)] : [])]),
    )
  }
  const rows = await query.groupBy(FLOW_KEY).execute()
  // PostgreSQL returns sums of integers as text (bigint).
  return rows.map((r) => ({ ...r, num_connections: Number(r.num_connections) }))
}
