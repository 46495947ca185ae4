import type { FastifyInstance } from 'fastify'
import { ENFORCEMENT_MODES } from '@palisade/model'
import { installCommand } from '../agent-install.js'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import type { AppContext } from '../context.js'
import { randomSecret, sha256 } from '../crypto.js'
import { invalidOne, notFound } from '../errors.js'
import { pairingProfileHref as href } from '../hrefs.js'
import { bodyObject, collection, json, orgOf, userActor } from '../http.js'
import { filtersOf } from '../query/query-filters.js'
import { recordEvent } from '../stores/events.js'
import { labelsByHref } from '../stores/labels.js'
import type { ProfileRow } from '../stores/pairing.js'
import {
  deleteProfile,
  findProfile,
  insertPairingKey,
  insertProfile,
  listProfiles,
  updateProfile,
} from '../stores/pairing.js'
import { Checker } from '../validate.js'
import { allowedRangesOf } from '../workloads/allowed-ranges.js'
import { API_VISIBILITY_LEVELS } from '../workloads/workload-fields.js'

/**
 * The `*_lock` flags: whether activation may override the profile's value. Palisade's activation
 * never overrides any (it takes no values but the host's), so every value is locked whatever
 * the flag says; the flags are kept and shown as given (docs/policy-semantics.md).
 */
const LOCKS = [
  'enforcement_mode_lock',
  'visibility_level_lock',
  'log_traffic_lock',
  'role_label_lock',
  'app_label_lock',
  'env_label_lock',
  'loc_label_lock',
] as const

function profileView(r: ProfileRow) {
  return {
    href: href(r.org_id, r.id),
    name: r.name,
    description: r.description ?? '',
    enabled: r.enabled === 1,
    enforcement_mode: r.enforcement_mode,
    visibility_level: r.visibility_level,
    labels: r.labels.map((h) => ({ href: h })),
    allowed_uses_per_key: r.allowed_uses_per_key ?? 'unlimited',
    // Where its agents may report addresses; null: anywhere.
    allowed_ip_ranges: r.allowed_ip_ranges,
    key_lifespan: r.key_lifespan ?? 'unlimited',
    agent_type: r.agent_type,
    // the release the server carries: Palisade installs no other
    agent_software_release: null,
    ...Object.fromEntries(LOCKS.map((k) => [k, r.locks[k] ?? true])),
    ...(r.log_traffic !== null && { log_traffic: r.log_traffic === 1 }),
    external_data_set: r.external_data_set,
    external_data_reference: r.external_data_reference,
    created_at: r.created_at,
    updated_at: r.updated_at,
  }
}

function checkProfile(
  body: Record<string, unknown>,
  partial: boolean,
  labels: ReadonlyMap<string, unknown>,
) {
  const c = new Checker()
  c.only(body, '$', [
    'name',
    'description',
    'enabled',
    'enforcement_mode',
    'visibility_level',
    'labels',
    'allowed_uses_per_key',
    'allowed_ip_ranges',
    'key_lifespan',
    'agent_type',
    'agent_software_release',
    ...LOCKS,
    'log_traffic',
    'external_data_set',
    'external_data_reference',
  ])
  c.string(body, 'name', '$', { required: !partial })
  c.string(body, 'description', '$', { max: 1024, nullable: true })
  c.string(body, 'external_data_set', '$', { max: 255, nullable: true })
  c.string(body, 'external_data_reference', '$', { max: 255, nullable: true })
  for (const key of [...LOCKS, 'log_traffic']) c.bool(body, key, '$')
  const release = c.string(body, 'agent_software_release', '$', { max: 255, nullable: true })
  if (release)
    c.fail(
      '$.agent_software_release',
      'Palisade installs the agent release the server carries (GET /agent/install.sh) and cannot pin another; send null',
      'unsupported_field_value',
    )
  c.bool(body, 'enabled', '$')
  c.oneOf(body, 'enforcement_mode', '$', ENFORCEMENT_MODES)
  c.oneOf(body, 'visibility_level', '$', API_VISIBILITY_LEVELS)
  c.oneOf(body, 'agent_type', '$', ['server', 'endpoint'])
  for (const key of ['allowed_uses_per_key', 'key_lifespan'] as const) {
    if (body[key] !== 'unlimited')
      c.int(body, key, '$', { min: 1, max: key === 'key_lifespan' ? 10 * 365 * 86400 : 1_000_000 })
  }
  const ranges = allowedRangesOf(c, body)
  ;(c.array(body, 'labels', '$', { max: 64 }) ?? []).forEach((x, i) => {
    const h = c.hrefRef(x, `$.labels[${i}]`)
    if (h !== undefined && !labels.has(h))
      c.fail(`$.labels[${i}]`, `label ${h} does not exist`, 'invalid_label')
  })
  c.done()
  return { ranges }
}

const limit = (x: unknown) => (typeof x === 'number' ? x : null)

/** The columns a checked body sets (the agent type is set on create only). */
function profileFields(body: Record<string, unknown>) {
  return {
    ...(body.name !== undefined && { name: body.name as string }),
    ...(body.enabled !== undefined && { enabled: body.enabled ? 1 : 0 }),
    ...(body.enforcement_mode !== undefined && {
      enforcement_mode: body.enforcement_mode as string,
    }),
    ...(body.visibility_level !== undefined && {
      visibility_level: body.visibility_level as string,
    }),
    ...(body.labels !== undefined && {
      labels: (body.labels as { href: string }[]).map((l) => l.href),
    }),
    ...(body.allowed_uses_per_key !== undefined && {
      allowed_uses_per_key: limit(body.allowed_uses_per_key),
    }),
    ...(body.key_lifespan !== undefined && { key_lifespan: limit(body.key_lifespan) }),
    ...(body.description !== undefined && { description: body.description as string | null }),
    ...(body.external_data_set !== undefined && {
      external_data_set: body.external_data_set as string | null,
    }),
    ...(body.external_data_reference !== undefined && {
      external_data_reference: body.external_data_reference as string | null,
    }),
    ...(body.log_traffic !== undefined && { log_traffic: body.log_traffic ? 1 : 0 }),
  }
}

/** The lock flags after a checked body: the ones given over the ones kept. */
const locksOf = (
  body: Record<string, unknown>,
  before: Record<string, boolean> = {},
): Record<string, boolean> => ({
  ...before,
  ...Object.fromEntries(
    LOCKS.filter((k) => typeof body[k] === 'boolean').map((k) => [k, body[k] === true]),
  ),
})

export function registerPairing(api: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx
  const find = async (org: number, id: string) => {
    const r = await findProfile(db, org, Number(id))
    if (!r || !/^\d+$/.test(id)) throw notFound(href(org, Number(id)))
    return r
  }

  api.get('/orgs/:org/pairing_profiles', async (req, reply) => {
    const org = orgOf(req)
    const f = filtersOf(req)
    // Fields a profile may not store (yet) read as unset: their filters then match nothing.
    const field = (r: ProfileRow, k: string) => (r as unknown as Record<string, string | null>)[k]
    const rows = (await listProfiles(db, org)).filter(
      (r) =>
        f.text('name', r.name) &&
        ['description', 'external_data_set', 'external_data_reference'].every((k) =>
          f.text(k, field(r, k)),
        ) &&
        f.labelsMatch((h) => r.labels.includes(h)) &&
        !f.has('agent_software_release') &&
        f.is('ven_type', r.agent_type),
    )
    return collection(req, reply, ctx.jobs, org, rows.map(profileView))
  })

  api.get('/orgs/:org/pairing_profiles/:id', async (req, reply) => {
    const org = orgOf(req)
    return json(reply, 200, profileView(await find(org, (req.params as { id: string }).id)))
  })

  api.post('/orgs/:org/pairing_profiles', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const { ranges } = checkProfile(body, false, await labelsByHref(db, org))
    const t = now()
    const row = await db.transaction().execute(async (tx) => {
      const r = await insertProfile(tx, {
        org_id: org,
        name: '',
        enabled: 1,
        enforcement_mode: 'visibility_only',
        visibility_level: 'flow_summary',
        labels: [],
        allowed_uses_per_key: null,
        key_lifespan: null,
        description: null,
        external_data_set: null,
        external_data_reference: null,
        log_traffic: null,
        ...profileFields(body),
        allowed_ip_ranges: ranges ?? null,
        locks: locksOf(body),
        agent_type: (body.agent_type as string) ?? 'server',
        created_at: t,
        updated_at: t,
      })
      await recordEvent(tx, org, {
        event_type: 'pairing_profile.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('pairing_profile', href(org, r.id), 'create', undefined, profileView(r)),
        ],
      })
      return r
    })
    return json(reply, 201, profileView(row))
  })

  api.put('/orgs/:org/pairing_profiles/:id', async (req, reply) => {
    const org = orgOf(req)
    const body = bodyObject(req)
    const before = await find(org, (req.params as { id: string }).id)
    const { ranges } = checkProfile(body, true, await labelsByHref(db, org))
    await db.transaction().execute(async (tx) => {
      const after = await updateProfile(tx, before.id, {
        ...profileFields(body),
        ...(ranges !== undefined && { allowed_ip_ranges: ranges }),
        locks: locksOf(body, before.locks),
        updated_at: now(),
      })
      await recordEvent(tx, org, {
        event_type: 'pairing_profile.update',
        created_by: userActor(req),
        resource_changes: [
          resourceChange(
            'pairing_profile',
            href(org, before.id),
            'update',
            profileView(before),
            profileView(after),
          ),
        ],
      })
    })
    return reply.code(204).send()
  })

  api.delete('/orgs/:org/pairing_profiles/:id', async (req, reply) => {
    const org = orgOf(req)
    const before = await find(org, (req.params as { id: string }).id)
    await db.transaction().execute(async (tx) => {
      await deleteProfile(tx, before.id)
      await recordEvent(tx, org, {
        event_type: 'pairing_profile.delete',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('pairing_profile', href(org, before.id), 'delete', profileView(before)),
        ],
      })
    })
    return reply.code(204).send()
  })

  /** A new activation code: shown once; only its hash is kept, with its uses and expiry. */
  api.post('/orgs/:org/pairing_profiles/:id/pairing_key', async (req, reply) => {
    const org = orgOf(req)
    const p = await find(org, (req.params as { id: string }).id)
    if (p.enabled !== 1)
      throw invalidOne(
        'pairing_profile_disabled',
        `${href(org, p.id)} is disabled; enable it to generate keys`,
      )
    const code = randomSecret(20)
    const t = new Date()
    await db.transaction().execute(async (tx) => {
      await insertPairingKey(tx, {
        code_hash: sha256(code),
        profile_id: p.id,
        org_id: org,
        created_at: t.toISOString(),
        expires_at:
          p.key_lifespan === null
            ? null
            : new Date(t.getTime() + p.key_lifespan * 1000).toISOString(),
        uses_left: p.allowed_uses_per_key,
      })
      await recordEvent(tx, org, {
        event_type: 'pairing_key.create',
        created_by: userActor(req),
        resource_changes: [
          resourceChange('pairing_profile', href(org, p.id), 'update', undefined, {
            pairing_key: 'generated',
          }),
        ],
      })
    })
    // Palisade's addition: the one-liner that installs the agent from this server and pairs.
    const palisade = await installCommand(ctx, req.headers.host, code)
    return json(reply, 200, { activation_code: code, palisade })
  })
}
