import { now } from '../clock.js'
import type { Db } from '../stores/db.js'
import { aggregateFlows } from '../stores/flows.js'
import { advanceQuery } from '../stores/traffic-queries.js'
import { actorContext } from './actor-context.js'
import { addressFilter } from './address-filter.js'
import { selectFlows } from './flow-match.js'
import type { TrafficQuery } from './query-parse.js'

/** Runs a query and stores its result; a failure is stored too, with what went wrong. */
export async function runQuery(db: Db, org: number, id: string, q: TrafficQuery): Promise<void> {
  try {
    await advanceQuery(db, id, { status: 'working' }, now())
    const ctx = await actorContext(db, org)
    const rows = await aggregateFlows(db, org, q, addressFilter(q, ctx))
    const { records, matches } = selectFlows(rows, q, ctx)
    await advanceQuery(
      db,
      id,
      { status: 'completed', records, matches_count: matches, flows_count: records.length },
      now(),
    )
  } catch (e) {
    await advanceQuery(db, id, { status: 'failed', error: (e as Error).message }, now())
  }
}
