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
