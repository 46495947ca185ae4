import type { FastifyInstance } from 'fastify'
import type { AppContext } from '../context.js'
import { orNotFound } from '../errors.js'
import { datafileHref, jobHref } from '../hrefs.js'
import { json, orgOf } from '../http.js'

export const PRODUCT_VERSION = {
  version: '25.2.10',
  build: 'palisade-0.1.0',
  long_display: 'Palisade 0.1.0 (Illumio Core API 25.2 compatible)',
  short_display: '25.2.10',
}

export function registerMisc(api: FastifyInstance, ctx: AppContext): void {
  api.get('/health', async (_req, reply) =>
    json(reply, 200, [
      { status: 'normal', type: 'snc0', nodes: [{ hostname: 'palisade', status: 'normal' }] },
    ]),
  )
  api.get('/product_version', async (_req, reply) => json(reply, 200, PRODUCT_VERSION))

  api.get('/orgs/:org/settings/workloads', async (req, reply) => {
    orgOf(req)
    return json(reply, 200, {
      workload_disconnected_timeout_seconds: [{ value: 3600 }],
      workload_goodbye_timeout_seconds: [{ value: 900 }],
    })
  })

  /** Palisade's addition: what `palisade agent activate` needs besides a code (the console shows it). */
  api.get('/orgs/:org/agent_activation', async (req, reply) => {
    orgOf(req)
    const e = ctx.agentEndpoint()
    return json(reply, 200, {
      management_server: `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`,
      ca_cert: ctx.caCertFile ?? null,
    })
  })

  api.get('/orgs/:org/jobs/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    return json(reply, 200, orNotFound(ctx.jobs.job(org, id), jobHref(org, id)))
  })

  api.get('/orgs/:org/datafiles/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    return json(reply, 200, orNotFound(ctx.jobs.datafile(org, id), datafileHref(org, id)))
  })
}
