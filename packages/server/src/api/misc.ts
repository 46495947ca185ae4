import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { AppContext } from '../context.js'
import { notFound, orNotFound } from '../errors.js'
import { datafileHref, jobHref } from '../hrefs.js'
import { collection, json, jobView, orgOf } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { deleteJob, findJob, jobData, jobsMatching } from '../stores/jobs.js'

/** Palisade's version; `build` is a number, as clients declare it. */
export const PRODUCT_VERSION = {
  product_name: 'palisade',
  version: '25.2.10',
  build: 0,
  release_info: 'palisade-0.1.0',
  engineering_info: 'palisade-0.1.0',
  long_display: 'Palisade 0.1.0 (Illumio Core API 25.2 compatible)',
  short_display: '25.2.10',
}

export function registerMisc(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  api.get('/health', async (_req, reply) =>
    json(reply, 200, [
      { status: 'normal', type: 'snc0', nodes: [{ hostname: 'palisade', status: 'normal' }] },
    ]),
  )
  api.get('/product_version', async (_req, reply) => json(reply, 200, PRODUCT_VERSION))

  /** Palisade's addition: what `palisade agent activate` needs besides a code (the console shows it). */
  api.get('/orgs/:org/agent_activation', async (req, reply) => {
    orgOf(req)
    const e = ctx.agentEndpoint()
    return json(reply, 200, {
      management_server: `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`,
      ca_cert: ctx.caCertFile ?? null,
    })
  })

  api.get('/orgs/:org/jobs', async (req, reply) => {
    const org = orgOf(req)
    const jobs = jobsMatching(db, org, filtersOf(req).string('job_type'))
    return collection(req, reply, ctx.jobs, org, jobs, (rows) => rows.map(jobView))
  })

  api.get('/orgs/:org/jobs/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    return json(reply, 200, jobView(orNotFound(await findJob(db, org, id), jobHref(org, id))))
  })

  api.delete('/orgs/:org/jobs/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    if (!(await deleteJob(db, org, id))) throw notFound(jobHref(org, id))
    return reply.code(204).send()
  })

  api.get('/orgs/:org/datafiles/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const text = orNotFound(await jobData(db, org, id), datafileHref(org, id))
    return reply.code(200).header('content-type', 'application/json').send(Readable.from(text))
  })
}
