import { randomUUID } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { invalidOne, orNotFound } from '../errors.js'
import { policySnapshot } from '../host-policy/snapshot-builder.js'
import { trafficQueryHref, userHref } from '../hrefs.js'
import { bodyObject, collection, json, jsonText, orgOf } from '../http.js'
import type { TrafficQueryRow } from '../stores/traffic-queries.js'
import { filtersOf } from '../query/query-filters.js'
import {
  cancelQuery,
  deleteQuery,
  findQuery,
  flowRecordsOf,
  insertQuery,
  queriesOf,
  saveDraftDecisions,
} from '../stores/traffic-queries.js'
import { flowsCsv } from '../traffic/flow-csv.js'
import { draftDecider } from '../traffic/flow-match.js'
import type { TrafficQuery } from '../traffic/query-parse.js'
import { fqdnsOf, parseTrafficQuery, withAddresses } from '../traffic/query-parse.js'
import { Checker } from '../validate.js'
import { runQuery } from '../traffic/query-runner.js'

/**
 * A query's destinations named by FQDN match the addresses the server resolves the name to
 * now (flows are recorded by address); a name that does not resolve is a 406.
 */
async function resolveFqdns(q: TrafficQuery): Promise<TrafficQuery> {
  const names = fqdnsOf(q)
  if (names.length === 0) return q
  const found = new Map<string, string[]>()
  const failed: string[] = []
  for (const name of names) {
    try {
      found.set(
        name,
        (await lookup(name, { all: true })).map((a) => a.address),
      )
    } catch {
      failed.push(name)
    }
  }
  if (failed.length > 0)
    throw invalidOne(
      'fqdn_not_resolved',
      `$.destinations: ${failed.join(', ')} does not resolve from the server; flows are recorded by address: name the address or an IP list instead`,
    )
  return withAddresses(q, found)
}

/** A query the node running it did not finish in this time is reported as failed. */
const STALE_MS = 15 * 60_000

function queryView(r: TrafficQueryRow) {
  const stale = r.status === 'working' && Date.now() - Date.parse(r.updated_at) > STALE_MS
  const status = stale ? 'failed' : r.status
  const error = stale ? 'the server running this query stopped; run it again' : (r.error ?? '')
  return {
    href: trafficQueryHref(r.org_id, r.id),
    status,
    // Where the records are once completed; what went wrong once failed (clients read both).
    result:
      status === 'completed'
        ? `${trafficQueryHref(r.org_id, r.id)}/download`
        : status === 'failed'
          ? { message: error }
          : null,
    ...(status === 'failed' && { error_message: error }),
    query_parameters: r.query_parameters,
    matches_count: r.matches_count,
    flows_count: r.flows_count,
    regions: [],
    // `completed` once update_rules has evaluated the draft policy (the Go SDK waits for it).
    rules: r.rules === null ? null : 'completed',
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
    const q = await resolveFqdns(parseTrafficQuery(body, now()))
    const id = randomUUID()
    await insertQuery(db, {
      id,
      org,
      parameters: body,
      createdBy: userHref(req.user?.id ?? 0),
      at: now(),
    })
    // A query that cannot even record its failure (the store away) is logged; it stays queued.
    setImmediate(() => void runQuery(db, org, id, q).catch((e: Error) => req.log.error(e)))
    return json(reply, 201, queryView(await find(org, id)))
  })

  api.get('/orgs/:org/traffic_flows/async_queries', async (req, reply) => {
    const org = orgOf(req)
    return collection(req, reply, ctx.jobs, org, queriesOf(db, org), (rows) => rows.map(queryView))
  })

  api.get('/orgs/:org/traffic_flows/async_queries/:id', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, queryView(await find(org, (req.params as { id: string }).id)))
  })

  /**
   * The records: JSON when the request accepts application/json (or any type at all), else CSV
   * (asked for with text/csv, or by asking for nothing, as the Go SDK's CSV export does).
   */
  api.get('/orgs/:org/traffic_flows/async_queries/:id/download', async (req, reply) => {
    const r = await completed(req, 'download its result')
    const accept = String(req.headers.accept ?? '')
    if (/application\/json/.test(accept) || (/\*\/\*/.test(accept) && !/text\/csv/.test(accept)))
      return jsonText(reply, 200, r.result)
    const withDraft = filtersOf(req).bool('include_draft_policy_in_csv') === true
    return reply
      .code(200)
      .header('content-type', 'text/csv')
      .send(flowsCsv(flowRecordsOf(r.result), withDraft && r.rules !== null))
  })

  /** Adds each flow's decision under the draft policy (`draft_policy_decision`). */
  api.put('/orgs/:org/traffic_flows/async_queries/:id/update_rules', async (req, reply) => {
    const org = orgOf(req)
    const r = await completed(req, 'evaluate its rules')
    const decide = draftDecider(await policySnapshot(db, org, 'draft'))
    const updated = flowRecordsOf(r.result).map((f) => ({ ...f, draft_policy_decision: decide(f) }))
    await saveDraftDecisions(db, r.id, updated, now())
    return reply.code(204).send()
  })

  const cancel = async (req: FastifyRequest) => {
    const org = orgOf(req)
    const r = await find(org, (req.params as { id: string }).id)
    if (r.status === 'queued' || r.status === 'working') await cancelQuery(db, r.id, now())
  }

  /** The vendor's cancel: `{"status": "cancel_requested"}`. */
  api.put('/orgs/:org/traffic_flows/async_queries/:id', async (req, reply) => {
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['status'])
    c.oneOf(body, 'status', '$', ['cancel_requested'], { required: true })
    c.done()
    await cancel(req)
    return reply.code(204).send()
  })

  /** Palisade's older form of the same. */
  api.put('/orgs/:org/traffic_flows/async_queries/:id/cancel', async (req, reply) => {
    await cancel(req)
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/traffic_flows/async_queries/:id', async (req, reply) => {
    const org = orgOf(req)
    const r = await find(org, (req.params as { id: string }).id)
    await deleteQuery(db, r.id)
    return reply.code(204).send()
  })
}
