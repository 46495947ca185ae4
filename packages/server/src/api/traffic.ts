import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely, Selectable } from 'kysely'
import type { AppContext } from '../context.js'
import type { Database } from '../db/schema.js'
import { invalidOne, notFound } from '../errors.js'
import { bodyObject, json, jsonText, orgOf } from '../http.js'
import { now } from '../clock.js'
import { actorContext, aggregateFlows } from '../traffic/flow-store.js'
import type { FlowRecord, TrafficQuery } from '../traffic/query.js'
import { draftDecider, parseTrafficQuery, selectFlows } from '../traffic/query.js'
import { trafficQueryHref, userHref } from '../hrefs.js'

type Row = Selectable<Database['traffic_queries']>

/** A query the node running it did not finish in this time is reported as failed. */
const STALE_MS = 15 * 60_000

function queryView(r: Row) {
  const stale = r.status === 'working' && Date.now() - Date.parse(r.updated_at) > STALE_MS
  const status = stale ? 'failed' : r.status
  return {
    href: trafficQueryHref(r.org_id, r.id),
    status,
    result: status === 'completed' ? `${trafficQueryHref(r.org_id, r.id)}/download` : null,
    ...(status === 'failed' && {
      error_message: stale ? 'the server running this query stopped; run it again' : r.error,
    }),
    query_parameters: JSON.parse(r.query_parameters) as unknown,
    matches_count: r.matches_count,
    flows_count: r.flows_count,
    regions: [],
    rules: r.rules === null ? null : { status: 'completed' },
    created_at: r.created_at,
    updated_at: r.updated_at,
    created_by: { href: r.created_by },
  }
}

/** Runs a query and stores its result; a failure is stored too, with what went wrong. */
async function run(db: Kysely<Database>, org: number, id: string, q: TrafficQuery): Promise<void> {
  const set = (values: Partial<Row>) =>
    db
      .updateTable('traffic_queries')
      .set({ ...values, updated_at: now() })
      .where('id', '=', id)
      .where('status', 'in', ['queued', 'working'])
      .execute()
  try {
    await set({ status: 'working' })
    const [rows, ctx] = await Promise.all([aggregateFlows(db, org, q), actorContext(db, org)])
    const { records, matches } = selectFlows(rows, q, ctx)
    await set({
      status: 'completed',
      result: JSON.stringify(records),
      matches_count: matches,
      flows_count: records.length,
    })
  } catch (e) {
    await set({ status: 'failed', error: (e as Error).message })
  }
}

/**
 * Traffic flow queries, the vendor's async form: POST a query, poll its href until `completed`,
 * then GET `result` (`…/download`) for the flow records.
 */
export function registerTraffic(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = async (org: number, id: string) => {
    const r = await db
      .selectFrom('traffic_queries')
      .selectAll()
      .where('org_id', '=', org)
      .where('id', '=', id)
      .executeTakeFirst()
    if (!r) throw notFound(trafficQueryHref(org, id))
    return r
  }
  /** A query whose result is ready; `then` says what the caller wanted to do with it. */
  const completed = async (req: FastifyRequest, then: string) => {
    const r = await find(orgOf(req), (req.params as { id: string }).id)
    if (r.status !== 'completed' || r.result === null)
      throw invalidOne(
        'traffic_query_not_completed',
        `the query is ${queryView(r).status}; ${then} once its status is completed`,
      )
    return { ...r, result: r.result }
  }

  api.post('/orgs/:org/traffic_flows/async_queries', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const q = parseTrafficQuery(body, now())
    const id = randomUUID()
    const ts = now()
    await db
      .insertInto('traffic_queries')
      .values({
        id,
        org_id: org,
        status: 'queued',
        query_parameters: JSON.stringify(body),
        result: null,
        error: null,
        rules: null,
        matches_count: 0,
        flows_count: 0,
        created_by: userHref(req.user?.id ?? 0),
        created_at: ts,
        updated_at: ts,
      })
      .execute()
    setImmediate(() => void run(db, org, id, q))
    return json(reply, 202, queryView(await find(org, id)))
  })

  api.get('/orgs/:org/traffic_flows/async_queries', async (req, reply) => {
    const org = orgOf(req)
    const rows = await db
      .selectFrom('traffic_queries')
      .selectAll()
      .where('org_id', '=', org)
      .orderBy('created_at', 'desc')
      .limit(500)
      .execute()
    return json(reply, 200, rows.map(queryView))
  })

  api.get('/orgs/:org/traffic_flows/async_queries/:id', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, queryView(await find(org, (req.params as { id: string }).id)))
  })

  api.get('/orgs/:org/traffic_flows/async_queries/:id/download', async (req, reply) => {
    return jsonText(reply, 200, (await completed(req, 'download its result')).result)
  })

  /** Adds each flow's decision under the draft policy (`draft_policy_decision`). */
  api.put('/orgs/:org/traffic_flows/async_queries/:id/update_rules', async (req, reply) => {
    const org = orgOf(req)
    const r = await completed(req, 'evaluate its rules')
    const records = JSON.parse(r.result) as FlowRecord[]
    const decide = draftDecider(await ctx.hostPolicies.snapshot(org, 'draft'))
    const updated = records.map((f) => ({ ...f, draft_policy_decision: decide(f) }))
    await db
      .updateTable('traffic_queries')
      .set({ result: JSON.stringify(updated), rules: 'completed', updated_at: now() })
      .where('id', '=', r.id)
      .execute()
    return reply.code(202).send()
  })

  api.put('/orgs/:org/traffic_flows/async_queries/:id/cancel', async (req, reply) => {
    const org = orgOf(req)
    const r = await find(org, (req.params as { id: string }).id)
    if (r.status === 'queued' || r.status === 'working')
      await db
        .updateTable('traffic_queries')
        .set({ status: 'cancelled', updated_at: now() })
        .where('id', '=', r.id)
        .execute()
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/traffic_flows/async_queries/:id', async (req, reply) => {
    const org = orgOf(req)
    const r = await find(org, (req.params as { id: string }).id)
    await db.deleteFrom('traffic_queries').where('id', '=', r.id).execute()
    return reply.code(204).send()
  })
}
