/**
 * Every write endpoint against generated malformed bodies: never a 5xx, always a clear
 * `[{token, message}]`, and a refused request changes nothing in the store.
 */
import fc from 'fast-check'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const RUNS = Number(process.env.PALISADE_MALFORMED_RUNS ?? 1000)
const O = '/api/v2/orgs/1'

/** Keys of the objects inside a body: references, actors, ports, interfaces, bindings. */
const INNER_KEYS = [
  'href',
  'label',
  'key',
  'proto',
  'port',
  'exclusion',
  'actors',
  'address',
  'cidr_block',
  'default_gateway_address',
  'virtual_service',
  'workload',
  'new_port',
]

/**
 * Bodies shaped like the real ones but wrong somewhere, plus arbitrary JSON and non-JSON;
 * `refs` are hrefs that exist, so references can be right while something else is wrong.
 */
const plausible = (keys: string[], refs: string[]) => {
  const ref = fc.constantFrom(...refs).map((href) => ({ href }))
  return fc.dictionary(
    fc.constantFrom(...keys, 'href', 'extra'),
    fc.oneof(
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      ref,
      fc.array(fc.oneof(fc.anything(), ref), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom(...INNER_KEYS), fc.oneof(fc.anything(), ref), {
        maxKeys: 3,
      }),
    ),
    { maxKeys: 6 },
  )
}
/** A body: an object, or for the routes that take a list (`list`), a list of them. */
const body = (keys: string[], refs: string[], list: boolean) =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: (list
        ? fc.array(plausible(keys, refs), { maxLength: 3 })
        : plausible(keys, refs)
      ).map((o) => JSON.stringify(o)),
    },
    { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  )

describe('malformed bodies on every write endpoint (property)', () => {
  let s: TestServer
  let endpoints: [method: 'POST' | 'PUT', url: string, keys: string[], list?: 'list'][] = []
  let refs: string[] = []

  /** Everything a write could change, in one query: row counts and the policy drafts. */
  const fingerprint = async () => {
    const { rows } = await sql<{ f: string }>`select
      (select count(*) from labels) || '/' || (select count(*) from workloads) || '/' ||
      (select count(*) from pairing_profiles) || '/' || (select count(*) from pairing_keys) || '/' ||
      (select count(*) from policy_versions) || '/' || (select count(*) from agents) || '/' ||
      (select count(*) from service_bindings) || '/' ||
      (select coalesce(sum(length(coalesce(draft, '')) + draft_deleted), 0) from policy_objects) || '/' ||
      (select coalesce(max(updated_at), '') from labels) || '/' || (select coalesce(max(updated_at), '') from workloads) || '/' ||
      (select coalesce(max(updated_at), '') from pairing_profiles) as f`.execute(s.db)
    return rows[0]?.f
  }

  beforeAll(async () => {
    s = await testServer()
    const label = (await s.call('POST', `${O}/labels`, { key: 'role', value: 'm' })).json<{
      href: string
    }>().href
    const rs = (
      await s.call('POST', `${O}/sec_policy/draft/rule_sets`, { name: 'm', scopes: [] })
    ).json<{ href: string }>().href
    const w = (
      await s.call('POST', `${O}/workloads`, {
        name: 'm',
        interfaces: [{ name: 'eth0', address: '198.18.0.5' }],
      })
    ).json<{ href: string }>().href
    const pp = (await s.call('POST', `${O}/pairing_profiles`, { name: 'm' })).json<{
      href: string
    }>().href
    const ruleOf = async (kind: string) =>
      (
        await s.call('POST', `/api/v2${rs}/${kind}`, {
          providers: [{ actors: 'ams' }],
          consumers: [{ actors: 'ams' }],
          ingress_services: [{ port: 80, proto: 6 }],
        })
      ).json<{ href: string }>().href
    const allowRule = await ruleOf('sec_rules')
    const denyRule = await ruleOf('deny_rules')
    const vs = (
      await s.call('POST', `${O}/sec_policy/draft/virtual_services`, {
        name: 'm',
        service_ports: [{ proto: 6, port: 8443 }],
      })
    ).json<{ href: string }>().href
    expect((await s.call('POST', `${O}/sec_policy`, {})).statusCode).toBe(201)
    const bound = await s.call('POST', `${O}/service_bindings`, [
      { virtual_service: { href: vs.replace('/draft/', '/active/') }, workload: { href: w } },
    ])
    expect(bound.statusCode, bound.body).toBe(201)
    refs = [
      label,
      w,
      vs,
      vs.replace('/draft/', '/active/'),
      bound.json<{ href: string }[]>()[0]?.href ?? '',
    ]
    const rule = [
      'providers',
      'consumers',
      'ingress_services',
      'enabled',
      'override',
      'unscoped_consumers',
      'description',
      'external_data_set',
      'external_data_reference',
      'network_type',
      'use_workload_subnets',
      'resolve_labels_as',
      'sec_connect',
      'stateless',
      'machine_auth',
      'consuming_security_principals',
    ]
    const virtualService = [
      'name',
      'description',
      'labels',
      'service_ports',
      'service',
      'apply_to',
      'ip_overrides',
      'service_addresses',
    ]
    const binding = ['virtual_service', 'workload', 'port_overrides', 'external_data_reference']
    const workload = ['name', 'description', 'labels', 'interfaces', 'enforcement_mode']
    endpoints = [
      ['POST', `${O}/labels`, ['key', 'value']],
      ['PUT', `/api/v2${label}`, ['key', 'value']],
      ['POST', `${O}/sec_policy/draft/ip_lists`, ['name', 'ip_ranges', 'from_ip', 'to_ip']],
      ['POST', `${O}/sec_policy/draft/services`, ['name', 'service_ports']],
      ['POST', `${O}/sec_policy/draft/label_groups`, ['name', 'key', 'labels', 'sub_groups']],
      ['POST', `${O}/sec_policy/draft/rule_sets`, ['name', 'scopes', 'enabled', 'rules']],
      ['PUT', `/api/v2${rs}`, ['name', 'scopes', 'enabled', 'rules', 'deny_rules']],
      ['POST', `/api/v2${rs}/sec_rules`, rule],
      ['POST', `/api/v2${rs}/deny_rules`, rule],
      ['PUT', `/api/v2${allowRule}`, rule],
      ['PUT', `/api/v2${denyRule}`, rule],
      ['POST', `${O}/sec_policy/draft/enforcement_boundaries`, ['name', ...rule]],
      [
        'PUT',
        `${O}/sec_policy/draft/firewall_settings`,
        [
          'firewall_coexistence',
          'scope',
          'illumio_primary',
          'workload_mode',
          'blocked_connection_reject_scopes',
        ],
      ],
      ['POST', `${O}/sec_policy/draft/virtual_services`, virtualService],
      ['PUT', `/api/v2${vs}`, virtualService],
      ['POST', `${O}/service_bindings`, binding, 'list'],
      ['PUT', `${O}/service_bindings/delete`, ['href'], 'list'],
      ['POST', `${O}/sec_policy`, ['update_description', 'change_subset']],
      ['POST', `${O}/workloads`, [...workload, 'hostname']],
      ['PUT', `/api/v2${w}`, [...workload, 'visibility_level']],
      ['PUT', `${O}/workloads/bulk_update`, ['href', 'name']],
      [
        'POST',
        `${O}/pairing_profiles`,
        ['name', 'enforcement_mode', 'labels', 'allowed_uses_per_key', 'key_lifespan'],
      ],
      ['PUT', `/api/v2${pp}`, ['name', 'enabled', 'key_lifespan']],
      ['POST', '/agent/v1/activate', ['activation_code', 'hostname', 'interfaces']],
    ]
  })
  afterAll(async () => {
    await s?.close()
  })

  it(`${RUNS} bodies per endpoint: no 5xx, clear messages, nothing stored when refused`, async () => {
    let refused = 0
    for (const [method, url, keys, list] of endpoints) {
      await fc.assert(
        fc.asyncProperty(body(keys, refs, list === 'list'), async (payload) => {
          const before = await fingerprint()
          const r = await s.call(method, url, payload)
          expect(r.statusCode, `${method} ${url} ${payload} -> ${r.body}`).toBeLessThan(500)
          if (r.statusCode < 400) return
          refused++
          const issues = r.json<{ token: string; message: string }[]>()
          expect(
            Array.isArray(issues) &&
              issues.length > 0 &&
              issues.every((i) => typeof i.token === 'string' && i.message.length > 5),
            `${method} ${url}: ${r.body}`,
          ).toBe(true)
          expect(
            await fingerprint(),
            `${method} ${url} ${payload}: a refused request changed the store`,
          ).toBe(before)
        }),
        { numRuns: RUNS },
      )
    }
    expect(refused).toBeGreaterThan(endpoints.length * RUNS * 0.9)
  }, 600_000)
})

describe('malformed bodies on the write routes of the vendor clients’ routes (property)', () => {
  let s: TestServer
  let endpoints: [method: 'POST' | 'PUT', url: string, keys: string[]][] = []
  let refs: string[] = []
  /** Every row a write of these routes could change, in one query (a string to compare). */
  const fingerprint = async () => {
    const all = (expr: string, table: string) =>
      sql.raw(`(select count(*) || ':' || coalesce(group_concat(${expr}, '|'), '') from ${table})`)
    const { rows } = await sql<{ f: string }>`select ${all(
      "key || display_name || display_info || coalesce(external_data_set, '') || coalesce(external_data_reference, '') || updated_at",
      'label_dimensions',
    )} || '/' || ${all('key || value', 'labels')} || '/' || ${all(
      "coalesce(name, '') || coalesce(description, '') || status || coalesce(target_release, '')",
      'agents',
    )} || '/' || ${all('updated_at', 'workloads')} || '/' || ${all(
      "name || '=' || value",
      'org_settings',
    )} || '/' || ${all(
      "key_id || name || coalesce(description, '') || coalesce(expires_at, '')",
      'api_keys',
    )} || '/' || ${all('username', 'users')} || '/' || ${all(
      'name || description || permissions || updated_at',
      'service_accounts',
    )} || '/' || ${all(
      "type || id || coalesce(draft, '') || draft_deleted",
      'policy_objects',
    )} || '/' || ${all('version', 'policy_versions')} || '/' || ${all(
      'status',
      'traffic_queries',
    )} || '/' || (select count(*) from events) as f`.execute(s.db)
    return rows[0]?.f
  }

  beforeAll(async () => {
    s = await testServer()
    const made = async (url: string, b: unknown) => {
      const r = await s.call('POST', url, b)
      expect(r.statusCode, `${url}: ${r.body}`).toBeLessThan(300)
      return r.json<{ href: string } & Record<string, unknown>>()
    }
    const dim = (await made(`${O}/label_dimensions`, { key: 'tier', display_name: 'Tier' })).href
    const pp = (await made(`${O}/pairing_profiles`, { name: 'm2' })).href
    const code = (await made(`/api/v2${pp}/pairing_key`, {})).activation_code as string
    const a = await s.app.inject({
      method: 'POST',
      url: '/agent/v1/activate',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ activation_code: code, hostname: 'm2' }),
    })
    expect(a.statusCode, a.body).toBe(201)
    const ven = (await s.call('GET', `${O}/vens`)).json<{ href: string }[]>()[0]?.href ?? ''
    const key = (await made('/api/v2/users/1/api_keys', { name: 'm2' })).href
    const account = (
      await made(`${O}/service_accounts`, {
        name: 'm2',
        permissions: [{ role: { href: '/orgs/1/roles/owner' }, scope: [] }],
        api_key: {},
      })
    ).href
    await made(`${O}/sec_policy/draft/ip_lists`, {
      name: 'm2',
      ip_ranges: [{ from_ip: '198.18.0.0/24' }],
    })
    const version = (await made(`${O}/sec_policy`, { update_description: 'm2' })).href
    const query = (await made(`${O}/traffic_flows/async_queries`, {})).href
    // it runs in the background: wait, so that it changes nothing during the property
    const status = async () =>
      (await s.call('GET', `/api/v2${query}`)).json<{ status: string }>().status
    for (let i = 0; i < 200 && (await status()) !== 'completed'; i++)
      await new Promise((r) => setTimeout(r, 10))
    expect(await status()).toBe('completed')
    const wl = (await s.call('GET', `${O}/workloads`)).json<{ href: string }[]>()[0]?.href ?? ''
    const settings = [
      'workload_disconnected_timeout_seconds',
      'workload_goodbye_timeout_seconds',
      'workload_disconnected_notification_seconds',
      'ven_uninstall_timeout_hours',
      'scope',
      'value',
      'warning',
      'ven_type',
    ]
    const dimension = [
      'key',
      'display_name',
      'display_info',
      'external_data_set',
      'external_data_reference',
    ]
    const acct = ['name', 'description', 'permissions', 'api_key', 'access_restriction']
    endpoints = [
      ['POST', `${O}/label_dimensions`, dimension],
      ['PUT', `/api/v2${dim}`, dimension],
      ['PUT', `/api/v2${ven}`, ['name', 'description', 'status', 'target_pce_fqdn']],
      ['PUT', `${O}/settings/workloads`, settings],
      [
        'PUT',
        `${O}/settings/events`,
        ['audit_event_retention_seconds', 'audit_event_min_severity', 'format'],
      ],
      ['POST', '/api/v2/users/1/api_keys', ['name', 'description']],
      ['PUT', `/api/v2${key}`, ['name', 'description']],
      ['POST', `${O}/service_accounts`, acct],
      ['PUT', `/api/v2${account}`, acct],
      ['POST', `/api/v2${account}/api_keys`, ['expires_in_seconds']],
      ['PUT', `${O}/sec_policy/delete`, ['change_subset', 'ip_lists']],
      ['POST', `${O}/sec_policy/draft/dependencies`, ['operation', 'change_subset']],
      ['POST', `/api/v2${version}/restore`, []],
      ['PUT', `${O}/workloads/unpair`, ['workloads', 'ip_table_restore']],
      ['PUT', `${O}/vens/unpair`, ['vens', 'firewall_restore']],
      ['PUT', `${O}/vens/upgrade`, ['release', 'vens']],
      ['PUT', `/api/v2${query}`, ['status']],
    ]
    expect(wl).toMatch(/^\/orgs\/1\/workloads\//)
    refs = [dim, pp, ven, key, account, version, wl]
  })
  afterAll(async () => {
    await s?.close()
  })

  it(`${RUNS} bodies per route: no 5xx, clear messages, nothing stored when refused`, async () => {
    let refused = 0
    for (const [method, url, keys] of endpoints) {
      await fc.assert(
        fc.asyncProperty(body(keys, refs, false), async (payload) => {
          const before = await fingerprint()
          const r = await s.call(method, url, payload)
          expect(r.statusCode, `${method} ${url} ${payload} -> ${r.body}`).toBeLessThan(500)
          if (r.statusCode < 400) return
          refused++
          const issues = r.json<{ token: string; message: string }[]>()
          expect(
            Array.isArray(issues) &&
              issues.length > 0 &&
              issues.every((i) => typeof i.token === 'string' && i.message.length > 5),
            `${method} ${url}: ${r.body}`,
          ).toBe(true)
          expect(
            await fingerprint(),
            `${method} ${url} ${payload}: a refused request changed the store`,
          ).toBe(before)
        }),
        { numRuns: RUNS },
      )
    }
    expect(refused).toBeGreaterThan(endpoints.length * RUNS * 0.8)
  }, 900_000)
})
