import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { invalidOne, orNotFound } from '../errors.js'
import { policySnapshot } from '../host-policy/snapshot-builder.js'
import { trafficQueryHref, userHref } from '../hrefs.js'
import { bodyObject, json, jsonText, orgOf } from '../http.js'
import type { TrafficQueryRow } from '../stores/traffic-queries.js'
import {
  cancelQuery,
  deleteQuery,
  findQuery,
  flowRecordsOf,
  insertQuery,
  listQueries,
  saveDraftDecisions,
} from '../stores/traffic-queries.js'
import { draftDecider } from '../traffic/flow-match.js'
import { parseTrafficQuery } from '../traffic/query-parse.js'
import { runQuery } from '../traffic/query-runner.js'

/** A query the node running it did not finish in this time is reported as failed. */
const STALE_MS = 15 * 60_000

function queryView(r: TrafficQueryRow) {
  const stale = r.status === 'working' && Date.now() - Date.parse(r.updated_at) > STALE_MS
  const status = stale ? 'failed' : r.status
  return {
    href: trafficQueryHref(r.org_id, r.id),
    status,
    result: status === 'completed' ? `${trafficQueryHref(r.org_id, r.id)}/download` : null,
    ...(status === 'failed' && {
      error_message: stale ? 'the server running this query stopped; run it again' : r.error,
    }),
    query_parameters: r.query_parameters,
    matches_count: r.matches_count,
    flows_count: r.flows_count,
    regions: [],
    rules: r.rules === null ? null : { status: 'completed' },
    created_at: r.created_at,
    updated_at: r.updated_at,
    created_by: { href: r.created_by },
  }
}

/**
 * Traffic flow queries, the vendor's async form: POST a query, poll its href until `completed`,
 * then GET `result` (`…/download`) for the flow records.
 */
export function registerTraffic(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = async (org: number, id: string) =>
    orNotFound(await findQuery(db, org, id), trafficQueryHref(org, id))
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
    await insertQuery(db, {
      id,
      org,
      parameters: body,
      createdBy: userHref(req.user?.id ?? 0),
      at: now(),
    })
    setImmediate(() => void runQuery(db, org, id, q))
    return json(reply, 202, queryView(await find(org, id)))
  })

  api.get('/orgs/:org/traffic_flows/async_queries', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, (await listQueries(db, org)).map(queryView))
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
    const decide = draftDecider(await policySnapshot(db, org, 'draft'))
    const updated = flowRecordsOf(r.result).map((f) => ({ ...f, draft_policy_decision: decide(f) }))
    await saveDraftDecisions(db, r.id, updated, now())
    return reply.code(202).send()
  })

  api.put('/orgs/:org/traffic_flows/async_queries/:id/cancel', async (req, reply) => {
    const org = orgOf(req)
    const r = await find(org, (req.params as { id: string }).id)
    if (r.status === 'queued' || r.status === 'working') await cancelQuery(db, r.id, now())
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/traffic_flows/async_queries/:id', async (req, reply) => {
    const org = orgOf(req)
    const r = await find(org, (req.params as { id: string }).id)
    await deleteQuery(db, r.id)
    return reply.code(204).send()
  })
}
