import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { newUuid } from '../crypto.js'
import { invalidOne, notFound } from '../errors.js'
import { draftHref, draftObjectHref, idOf, serviceBindingHref, workloadHref } from '../hrefs.js'
import { collection, json, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { bindingView } from '../policy/binding-view.js'
import type { BoundPorts } from '../policy/virtual-service-checks.js'
import { checkServiceBinding } from '../policy/virtual-service-checks.js'
import type { Db } from '../stores/db.js'
import { recordEvent } from '../stores/events.js'
import { policyObjects } from '../stores/policy-objects.js'
import type { BindingRow } from '../stores/service-bindings.js'
import {
  deleteBindings,
  findBinding,
  insertBindings,
  serviceBindings,
} from '../stores/service-bindings.js'
import { listWorkloads, workloadIds } from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import { Checker, isObj } from '../validate.js'

/** The ports each active virtual service has, for checking port overrides, by its draft href. */
async function activePorts(db: Db, org: number): Promise<Map<string, BoundPorts>> {
  const objects = await policyObjects(db, org)
  const services = new Map(
    objects
      .filter((o) => o.type === 'services' && o.active)
      .map((o) => [draftObjectHref(org, 'services', o.id), o.active?.service_ports]),
  )
  const out = new Map<string, BoundPorts>()
  for (const o of objects) {
    if (o.type !== 'virtual_services' || !o.active) continue
    const named = isObj(o.active.service) ? services.get(String(o.active.service.href)) : undefined
    const ports = (o.active.service_ports ?? named ?? []) as { proto: number; port?: number }[]
    out.set(draftObjectHref(org, 'virtual_services', o.id), ports)
  }
  return out
}

/**
 * Bindings of active virtual services to workloads. Not provisioned: a change applies at once,
 * and the hosts it reaches get their new policy before the answer.
 */
export function registerServiceBindings(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const views = async (org: number, rows: BindingRow[]) => {
    const workloads = new Map((await listWorkloads(db, org, 'any')).map((w) => [w.id, w]))
    return rows.map((b) => bindingView(org, b, workloads.get(b.workload_id)))
  }

  api.get('/orgs/:org/service_bindings', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    // references match in any policy version's form
    const names = (name: string, href: string) => {
      const wanted = f.string(name)
      return wanted === undefined || draftHref(wanted) === href
    }
    const rows = (await serviceBindings(db, org)).filter(
      (b) =>
        names('virtual_service', draftObjectHref(org, 'virtual_services', b.virtual_service_id)) &&
        names('workload', workloadHref(org, b.workload_id)) &&
        f.text('external_data_set', b.external_data_set) &&
        f.text('external_data_reference', b.external_data_reference),
    )
    return collection(req, reply, ctx.jobs, org, rows, (page) => views(org, page))
  })

  api.get('/orgs/:org/service_bindings/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const b = await findBinding(db, org, id)
    if (!b) throw notFound(serviceBindingHref(org, id))
    return json(reply, 200, (await views(org, [b]))[0])
  })

  api.post('/orgs/:org/service_bindings', async (req, reply) => {
    const org = orgOf(req)
    const items = req.body
    if (!Array.isArray(items) || items.length === 0)
      throw invalidOne(
        'input_validation_error',
        'the body must be a JSON list of bindings: [{"virtual_service": {"href": ...}, "workload": {"href": ...}}]',
      )
    if (items.length > 1000)
      throw invalidOne('too_many_items', 'at most 1,000 bindings per request')
    const created = await db.transaction().execute(async (tx) => {
      const ports = await activePorts(tx, org)
      const workloads = new Set((await workloadIds(tx, org)).map((id) => workloadHref(org, id)))
      const c = new Checker()
      const checked = items.map((x, i) =>
        checkServiceBinding(c, x, `$[${i}]`, { ports: (h) => ports.get(h), workloads }),
      )
      c.done()
      const t = now()
      const rows = checked.flatMap((b): BindingRow[] =>
        b
          ? [
              {
                id: newUuid(),
                org_id: org,
                virtual_service_id: idOf(String(b.virtual_service)),
                workload_id: idOf(String(b.workload)),
                port_overrides: b.port_overrides as Doc[],
                external_data_set: (b.external_data_set as string | null) ?? null,
                external_data_reference: (b.external_data_reference as string | null) ?? null,
                created_at: t,
              },
            ]
          : [],
      )
      await insertBindings(tx, rows)
      await recordEvent(tx, org, {
        event_type: 'service_binding.create',
        created_by: userActor(req),
        resource_changes: rows.map((r) =>
          resourceChange('service_binding', serviceBindingHref(org, r.id), 'create', undefined, {
            ...r,
            port_overrides: JSON.stringify(r.port_overrides),
          }),
        ),
      })
      return rows
    })
    await ctx.hostPolicies.recompute(org)
    return json(
      reply,
      201,
      created.map((r) => ({ href: serviceBindingHref(org, r.id) })),
    )
  })

  const remove = async (req: FastifyRequest, ids: string[]) => {
    const org = orgOf(req)
    await db.transaction().execute(async (tx) => {
      const rows = await serviceBindings(tx, org)
      const gone = ids.filter((id) => !rows.some((r) => r.id === id))
      if (gone.length > 0) throw notFound(serviceBindingHref(org, gone[0] ?? ''))
      await deleteBindings(tx, org, ids)
      await recordEvent(tx, org, {
        event_type: 'service_binding.delete',
        created_by: userActor(req),
        resource_changes: rows
          .filter((r) => ids.includes(r.id))
          .map((r) =>
            resourceChange('service_binding', serviceBindingHref(org, r.id), 'delete', {
              ...r,
              port_overrides: JSON.stringify(r.port_overrides),
            }),
          ),
      })
    })
    await ctx.hostPolicies.recompute(org)
  }

  api.delete('/orgs/:org/service_bindings/:id', async (req, reply) => {
    await remove(req, [(req.params as { id: string }).id])
    return reply.code(204).send()
  })

  /** Several at once: `[{"href": ...}]`; all or none. */
  api.put('/orgs/:org/service_bindings/delete', async (req, reply) => {
    const org = orgOf(req)
    const items = req.body
    const c = new Checker()
    if (!Array.isArray(items) || items.length === 0)
      c.fail('$', 'must be a JSON list of bindings to delete: [{"href": ...}]')
    const ids = (Array.isArray(items) ? items : []).flatMap((x, i) => {
      const href = c.hrefRef(x, `$[${i}]`)
      if (href === undefined) return []
      if (!href.startsWith(`/orgs/${org}/service_bindings/`))
        return c.fail(`$[${i}]`, `${href} is not a service binding of org ${org}`) ?? []
      return [idOf(href)]
    })
    c.done()
    await remove(req, [...new Set(ids)])
    return reply.code(204).send()
  })
}
