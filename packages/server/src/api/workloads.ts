import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { FirewallSettings } from '@palisade/model'
import {
  describeModeReason,
  ENFORCEMENT_MODES,
  OS_PLATFORMS,
  resolveMode,
  workloadCoexistenceView,
} from '@palisade/model'
import type { AppContext } from '../app.js'
import { newUuid } from '../crypto.js'
import type { Database } from '../db/schema.js'
import { invalidOne, notFound } from '../errors.js'
import { workloadHref, workloadModel } from '../host-policies.js'
import { boolParam, bodyObject, collection, json, orgOf, textMatches, userActor } from '../http.js'
import { now, recordEvent, resourceChange } from '../store.js'
import type { Doc } from '../validate.js'
import { Checker, interfacesOf, isObj } from '../validate.js'
import { RESTORE_MODES } from '@palisade/protocol'

export const VISIBILITY_LEVELS = [
  'flow_full_detail',
  'flow_summary',
  'flow_drops',
  'flow_off',
  'enhanced_data_collection',
] as const
type Row = Database['workloads']
/** What a view shows of an agent: not its credential, nor the host ruleset (up to 2 MB). */
const AGENT_VIEW_COLUMNS = [
  'id',
  'workload_id',
  'status',
  'last_heartbeat_at',
  'applied_version',
  'applied_at',
  'applied_mode',
  'health',
  'survey',
  'created_at',
] as const
type AgentRow = Pick<Database['agents'], (typeof AGENT_VIEW_COLUMNS)[number]>

/** A workload as the API shows it, with the computed firewall mode and its agent's state. */
function workloadView(
  org: number,
  w: Row,
  agent: AgentRow | undefined,
  { labels, settings, policyHashes }: ViewContext,
): Doc {
  const model = workloadModel(org, w)
  const mode = resolveMode(model, settings)
  const current = agent ? policyHashes.get(w.id) : undefined
  const health = agent ? (JSON.parse(agent.health) as Doc) : undefined
  return {
    href: workloadHref(org, w.id),
    name: w.name,
    hostname: w.hostname,
    managed: w.managed === 1,
    online: agent ? agent.status === 'active' : true,
    enforcement_mode: w.enforcement_mode,
    visibility_level: w.visibility_level,
    os_type: w.os_platform,
    labels: model.labels.map((href) => ({ href, ...labels.get(href) })),
    interfaces: (JSON.parse(w.interfaces) as Doc[]).map((i) => ({ ...i, link_state: 'up' })),
    firewall_coexistence: workloadCoexistenceView(mode),
    ven: agent ? { href: `/orgs/${org}/vens/${agent.id}` } : null,
    agent: agent
      ? {
          href: `/orgs/${org}/agents/${agent.id}`,
          type: w.agent_type,
          status: {
            status: agent.status,
            last_heartbeat_on: agent.last_heartbeat_at,
            managed_since: agent.created_at,
            security_policy_sync_state:
              agent.applied_version !== null &&
              current !== undefined &&
              (health?.applied_hash as string | undefined) === current
                ? 'synced'
                : 'syncing',
            security_policy_applied_at: agent.applied_at,
            security_policy_applied_version: agent.applied_version,
            fw_config_current: agent.applied_mode !== null,
            agent_health: (health?.conditions as unknown[]) ?? [],
          },
        }
      : null,
    external_data_set: w.external_data_set,
    external_data_reference: w.external_data_reference,
    created_at: w.created_at,
    updated_at: w.updated_at,
    deleted: false,
    // Palisade's additions: the effective mode and why, and what the agent found on the host.
    palisade: {
      firewall_mode: mode.mode,
      firewall_mode_reason: describeModeReason(mode),
      // The labels of the coexistence scopes that matched, so a reader needs no second lookup.
      firewall_mode_matched_scopes:
        mode.reason.kind === 'scope'
          ? mode.reason.items.map((i) =>
              (settings.firewallCoexistence[i]?.scope ?? []).map((href) => ({
                href,
                ...labels.get(href),
              })),
            )
          : [],
      ...(agent && {
        host: JSON.parse(agent.survey) as unknown,
        tampering: health?.tampering ?? null,
        health: health?.health ?? null,
        health_reason: health?.reason ?? null,
      }),
    },
  }
}

/** What the workload views of one request need, read once per request, not per workload. */
interface ViewContext {
  readonly labels: Map<string, { key: string; value: string }>
  readonly settings: FirewallSettings
  readonly agents: Map<string, AgentRow>
  /** The stored host policy's hash of each workload, to tell synced from syncing. */
  readonly policyHashes: Map<string, string>
}

async function viewContext(ctx: AppContext, org: number, ids: string[]): Promise<ViewContext> {
  const { db } = ctx
  const byChunk = async <T>(read: (chunk: string[]) => Promise<T[]>) =>
    (
      await Promise.all(
        Array.from({ length: Math.ceil(ids.length / 500) }, (_, i) =>
          read(ids.slice(i * 500, i * 500 + 500)),
        ),
      )
    ).flat()
  const agents = await byChunk((chunk) =>
    db
      .selectFrom('agents')
      .select(AGENT_VIEW_COLUMNS)
      .where('org_id', '=', org)
      .where('workload_id', 'in', chunk)
      .execute(),
  )
  const hashes = await byChunk((chunk) =>
    db
      .selectFrom('host_policies')
      .select(['workload_id', 'hash'])
      .where('workload_id', 'in', chunk)
      .execute(),
  )
  return {
    labels: await labelIndex(db, org),
    settings: await ctx.hostPolicies.firewallSettings(org),
    agents: new Map(agents.map((a) => [a.workload_id, a])),
    policyHashes: new Map(hashes.map((h) => [h.workload_id, h.hash])),
  }
}

/** The API views of these workloads. */
async function workloadViews(ctx: AppContext, org: number, rows: Row[]): Promise<Doc[]> {
  const view = await viewContext(
    ctx,
    org,
    rows.map((w) => w.id),
  )
  return rows.map((w) => workloadView(org, w, view.agents.get(w.id), view))
}

export async function labelIndex(db: Kysely<Database>, org: number) {
  const rows = await db.selectFrom('labels').selectAll().where('org_id', '=', org).execute()
  return new Map(rows.map((l) => [`/orgs/${org}/labels/${l.id}`, { key: l.key, value: l.value }]))
}

/** Validates workload fields (all optional on update); returns the columns to write. */
async function checkWorkload(
  db: Kysely<Database>,
  org: number,
  body: Doc,
  create: boolean,
  managed: boolean,
) {
  const c = new Checker()
  c.only(body, '$', [
    'name',
    'hostname',
    'description',
    'labels',
    'interfaces',
    'enforcement_mode',
    'visibility_level',
    'os_type',
    'external_data_set',
    'external_data_reference',
    'href',
  ])
  const name = c.string(body, 'name', '$', { max: 255 })
  const hostname = c.string(body, 'hostname', '$', { max: 255 })
  if (create && name === undefined && hostname === undefined)
    c.fail('$', 'a workload needs a name or a hostname')
  const enforcement = c.oneOf(body, 'enforcement_mode', '$', ENFORCEMENT_MODES)
  const visibility = c.oneOf(body, 'visibility_level', '$', VISIBILITY_LEVELS)
  const os = c.oneOf(body, 'os_type', '$', OS_PLATFORMS)
  c.string(body, 'external_data_set', '$', { max: 255, nullable: true })
  c.string(body, 'external_data_reference', '$', { max: 255, nullable: true })
  let labels: string[] | undefined
  const list = c.array(body, 'labels', '$', { max: 64 })
  if (list) {
    const known = await labelIndex(db, org)
    const keys = new Map<string, string>()
    labels = []
    list.forEach((x, i) => {
      const href = c.hrefRef(x, `$.labels[${i}]`)
      if (href === undefined) return
      const l = known.get(href)
      if (!l) return void c.fail(`$.labels[${i}]`, `label ${href} does not exist`, 'invalid_label')
      if (keys.has(l.key))
        c.fail(
          `$.labels[${i}]`,
          `a workload has one label per key; ${keys.get(l.key)} and ${href} are both "${l.key}"`,
          'invalid_label',
        )
      keys.set(l.key, href)
      labels?.push(href)
    })
  }
  const interfaces = interfacesOf(c, body)
  if (interfaces && managed)
    c.fail('$.interfaces', 'the interfaces of a managed workload come from its agent')
  c.done()
  return {
    ...(name !== undefined && { name }),
    ...(hostname !== undefined && { hostname }),
    ...(enforcement && { enforcement_mode: enforcement }),
    ...(visibility && { visibility_level: visibility }),
    ...(os && { os_platform: os }),
    ...(labels && { labels: JSON.stringify(labels) }),
    ...(interfaces && { interfaces: JSON.stringify(interfaces) }),
    ...(body.external_data_set !== undefined && {
      external_data_set: body.external_data_set as string,
    }),
    ...(body.external_data_reference !== undefined && {
      external_data_reference: body.external_data_reference as string,
    }),
  }
}

/** A workload of the org by id; 404 when there is none. */
export async function findWorkload(db: Kysely<Database>, org: number, id: string): Promise<Row> {
  const w = await db
    .selectFrom('workloads')
    .selectAll()
    .where('org_id', '=', org)
    .where('id', '=', id)
    .executeTakeFirst()
  if (!w) throw notFound(workloadHref(org, id))
  return w
}

export function registerWorkloads(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = (org: number, id: string) => findWorkload(db, org, id)

  api.get('/orgs/:org/workloads', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, unknown>
    let wanted: string[][] | undefined
    if (q.labels !== undefined) {
      try {
        wanted = JSON.parse(typeof q.labels === 'string' ? q.labels : '') as string[][]
        if (!Array.isArray(wanted) || !wanted.every((g) => Array.isArray(g)))
          throw new Error('shape')
      } catch {
        throw invalidOne(
          'invalid_labels_filter',
          'labels must be a JSON list of lists of label hrefs, e.g. [["/orgs/1/labels/1"]]',
        )
      }
    }
    const managed = boolParam(q.managed)
    const rows = await db
      .selectFrom('workloads')
      .selectAll()
      .where('org_id', '=', org)
      .orderBy('created_at')
      .execute()
    const out: Row[] = []
    for (const w of rows) {
      const wl = JSON.parse(w.labels) as string[]
      if (!textMatches(w.name, q.name, q) || !textMatches(w.hostname, q.hostname, q)) continue
      if (
        !textMatches(w.external_data_set, q.external_data_set, q) ||
        !textMatches(w.external_data_reference, q.external_data_reference, q)
      )
        continue
      if (q.enforcement_mode !== undefined && w.enforcement_mode !== q.enforcement_mode) continue
      if (q.visibility_level !== undefined && w.visibility_level !== q.visibility_level) continue
      if (managed !== undefined && (w.managed === 1) !== managed) continue
      if (wanted && !wanted.some((group) => group.every((h) => wl.includes(h)))) continue
      if (
        q.ip_address !== undefined &&
        !(JSON.parse(w.interfaces) as { address: string }[]).some((i) => i.address === q.ip_address)
      )
        continue
      out.push(w)
    }
    // views (agent state, sync state) only for the workloads the page returns
    return collection(req, reply, ctx.jobs, org, out, (page) => workloadViews(ctx, org, page))
  })

  api.get('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    const w = await find(org, (req.params as { id: string }).id)
    return json(reply, 200, (await workloadViews(ctx, org, [w]))[0])
  })

  const create = async (req: FastifyRequest, org: number, body: Doc) => {
    const fields = await checkWorkload(db, org, body, true, false)
    const id = newUuid()
    const t = now()
    const row: Row = {
      id,
      org_id: org,
      name: fields.name ?? fields.hostname ?? id,
      hostname: fields.hostname ?? fields.name ?? '',
      managed: 0,
      agent_type: 'server',
      os_platform: fields.os_platform ?? 'linux',
      enforcement_mode: fields.enforcement_mode ?? 'idle',
      visibility_level: fields.visibility_level ?? 'flow_summary',
      labels: fields.labels ?? '[]',
      interfaces: fields.interfaces ?? '[]',
      external_data_set: fields.external_data_set ?? null,
      external_data_reference: fields.external_data_reference ?? null,
      created_at: t,
      updated_at: t,
    }
    await db.transaction().execute(async (tx) => {
      await tx.insertInto('workloads').values(row).execute()
      await recordEvent(tx, org, {
        event_type: 'workload.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('workload', workloadHref(org, id), 'create', undefined, row),
        ],
      })
    })
    return row
  }

  const update = async (req: FastifyRequest, org: number, id: string, body: Doc) => {
    const before = await find(org, id)
    const fields = await checkWorkload(db, org, body, false, before.managed === 1)
    await db.transaction().execute(async (tx) => {
      const after = await tx
        .updateTable('workloads')
        .set({ ...fields, updated_at: now() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()
      await recordEvent(tx, org, {
        event_type: 'workload.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('workload', workloadHref(org, id), 'update', before, after),
        ],
      })
    })
  }

  const remove = async (req: FastifyRequest, org: number, id: string) => {
    const before = await find(org, id)
    if (before.managed === 1)
      throw invalidOne(
        'workload_managed',
        `${workloadHref(org, id)} is managed by an agent; unpair it instead`,
      )
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('workloads').where('id', '=', id).execute()
      await recordEvent(tx, org, {
        event_type: 'workload.delete',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('workload', workloadHref(org, id), 'delete', before, undefined),
        ],
      })
    })
  }

  api.post('/orgs/:org/workloads', async (req, reply) => {
    const org = orgOf(req)
    const row = await create(req, org, bodyObject(req))
    await ctx.hostPolicies.recompute(org)
    return json(reply, 201, (await workloadViews(ctx, org, [row]))[0])
  })

  api.put('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    await update(req, org, (req.params as { id: string }).id, bodyObject(req))
    // Enforcement mode, labels and addresses apply at once (they are not provisioned).
    await ctx.hostPolicies.recompute(org)
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/workloads/:id', async (req, reply) => {
    const org = orgOf(req)
    await remove(req, org, (req.params as { id: string }).id)
    await ctx.hostPolicies.recompute(org)
    return reply.code(204).send()
  })

  /** Bulk operations answer per item, so one bad item does not hide the others' results. */
  for (const op of ['bulk_create', 'bulk_update', 'bulk_delete'] as const) {
    api.put(`/orgs/:org/workloads/${op}`, async (req, reply) => {
      const org = orgOf(req)
      const items = req.body
      if (!Array.isArray(items))
        throw invalidOne('input_validation_error', 'the body must be a JSON list of workloads')
      if (items.length > 1000)
        throw invalidOne('too_many_items', 'at most 1,000 workloads per bulk request')
      const results: Doc[] = []
      for (const item of items) {
        try {
          if (!isObj(item))
            throw invalidOne('input_validation_error', 'each item must be a JSON object')
          if (op === 'bulk_create') {
            const row = await create(req, org, item)
            results.push({ href: workloadHref(org, row.id), status: 'created' })
            continue
          }
          const href = typeof item.href === 'string' ? item.href : ''
          const id = href.split('/').pop() ?? ''
          if (!href.startsWith(`/orgs/${org}/workloads/`))
            throw invalidOne('invalid_href', `href ${href} is not a workload of org ${org}`)
          const { href: _h, ...fields } = item
          if (op === 'bulk_update') await update(req, org, id, fields)
          else await remove(req, org, id)
          results.push({ href, status: op === 'bulk_update' ? 'updated' : 'deleted' })
        } catch (e) {
          const issues = (e as { issues?: unknown }).issues ?? [
            { token: 'error', message: (e as Error).message },
          ]
          results.push({
            href: isObj(item) ? (item.href ?? null) : null,
            status: 'validation_failure',
            errors: issues,
          })
        }
      }
      await ctx.hostPolicies.recompute(org)
      return json(reply, 200, results)
    })
  }

  // ---- VENs: the agents, read-mostly ----
  const venView = (org: number, a: AgentRow, w: Row) => {
    const health = JSON.parse(a.health) as Doc
    return {
      href: `/orgs/${org}/vens/${a.id}`,
      name: w.name,
      hostname: w.hostname,
      uid: a.id,
      os_platform: w.os_platform,
      status: a.status.startsWith('unpairing:') ? 'active' : a.status,
      ven_type: w.agent_type,
      activation_type: 'pairing_key',
      version: '0.1.0',
      workloads: [{ href: workloadHref(org, w.id) }],
      labels: (JSON.parse(w.labels) as string[]).map((href) => ({ href })),
      last_heartbeat_at: a.last_heartbeat_at,
      conditions: (health.conditions as unknown[]) ?? [],
      created_at: a.created_at,
    }
  }
  api.get('/orgs/:org/vens', async (req, reply) => {
    const org = orgOf(req)
    const q = req.query as Record<string, unknown>
    const rows = await db
      .selectFrom('agents')
      .innerJoin('workloads', 'workloads.id', 'agents.workload_id')
      .select(AGENT_VIEW_COLUMNS.map((c) => `agents.${c}` as const))
      .select([
        'workloads.name',
        'workloads.hostname',
        'workloads.os_platform',
        'workloads.agent_type',
        'workloads.labels',
        'workloads.id as wid',
      ])
      .where('agents.org_id', '=', org)
      .execute()
    const out = rows
      .filter(
        (r) =>
          (q.status === undefined || r.status === q.status) &&
          textMatches(r.hostname, q.hostname, q),
      )
      .map((r) => venView(org, r, { ...(r as unknown as Row), id: r.wid }))
    return collection(req, reply, ctx.jobs, org, out)
  })
  /**
   * Unpairs agents: each is told on its next policy request, restores the firewall as asked
   * (`firewall_restore`: default, saved, open or closed) and forgets its credential.
   */
  api.put('/orgs/:org/vens/unpair', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const c = new Checker()
    c.only(body, '$', ['vens', 'firewall_restore'])
    const mode = c.oneOf(body, 'firewall_restore', '$', RESTORE_MODES) ?? 'default'
    const hrefs = (c.array(body, 'vens', '$', { required: true, max: 1000 }) ?? []).map((x, i) =>
      c.hrefRef(x, `$.vens[${i}]`),
    )
    c.done()
    const ids = hrefs.map((h) => (h ?? '').split('/').pop() ?? '')
    const found = await db
      .selectFrom('agents')
      .select('id')
      .where('org_id', '=', org)
      .where('id', 'in', ids.length > 0 ? ids : [''])
      .execute()
    const missing = hrefs.filter((h, i) => !found.some((f) => f.id === ids[i]))
    if (missing.length > 0) throw invalidOne('invalid_ven', `no such VEN: ${missing.join(', ')}`)
    await db.transaction().execute(async (tx) => {
      for (const { id } of found) {
        await tx
          .updateTable('agents')
          .set({ status: `unpairing:${mode}` })
          .where('id', '=', id)
          .execute()
      }
      await recordEvent(tx, org, {
        event_type: 'agents.unpair',
        created_by: userActor(req),
        resource_changes: found.map(({ id }) =>
          resourceChange('ven', `/orgs/${org}/vens/${id}`, 'update', undefined, {
            firewall_restore: mode,
          }),
        ),
      })
    })
    const wl = await db
      .selectFrom('agents')
      .select('workload_id')
      .where('id', 'in', found.map((f) => f.id).concat(''))
      .execute()
    for (const w of wl) ctx.hostPolicies.kick(w.workload_id)
    return reply.code(204).send()
  })

  api.get('/orgs/:org/vens/:id', async (req, reply) => {
    const org = orgOf(req)
    const id = (req.params as { id: string }).id
    const a = await db
      .selectFrom('agents')
      .selectAll()
      .where('org_id', '=', org)
      .where('id', '=', id)
      .executeTakeFirst()
    if (!a) throw notFound(`/orgs/${org}/vens/${id}`)
    return json(reply, 200, venView(org, a, await find(org, a.workload_id)))
  })
}
