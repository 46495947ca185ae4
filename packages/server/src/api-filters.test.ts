/**
 * The documented filters of each collection the vendor's clients filter (issue 12), applied;
 * an unknown query parameter or a bad value refused with a 406 naming it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'
type Href = { href: string }
type Issue = { token: string; message: string }

describe.each(['sqlite', 'postgres'])('collection filters on %s', (dialect) => {
  let s: TestServer
  let pg: TestPostgres | undefined
  const L: Record<string, string> = {}
  let agent: { agent_id: string; workload_href: string }
  beforeAll(async () => {
    if (dialect === 'postgres') pg = await startTestPostgres()
    s = await testServer(pg ? await pg.freshDatabase() : undefined)
    const made = async (url: string, body: unknown) => {
      const r = await s.call('POST', url, body)
      expect(r.statusCode, `${url}: ${r.body}`).toBe(201)
      return r.json<Href>().href
    }
    for (const [key, value] of [
      ['role', 'f-web'],
      ['role', 'f-db'],
      ['env', 'f-prod'],
      ['env', 'f-dev'],
    ] as const)
      L[value] = await made(`${O}/labels`, { key, value })
    await made(`${O}/workloads`, {
      name: 'f-alpha',
      os_id: 'ubuntu-x86_64-jammy',
      online: false,
      labels: [{ href: L['f-web'] }, { href: L['f-prod'] }],
      interfaces: [{ name: 'eth0', address: '198.18.2.10' }],
    })
    await made(`${O}/workloads`, {
      name: 'f-beta',
      os_id: 'centos-x86_64-7',
      labels: [{ href: L['f-db'] }, { href: L['f-dev'] }],
      interfaces: [
        { name: 'eth0', address: '198.18.2.110' },
        { name: 'eth1', address: '2001:db8::5' },
      ],
    })
    const pp = await made(`${O}/pairing_profiles`, {
      name: 'f-pairing',
      labels: [{ href: L['f-web'] }],
    })
    await made(`${O}/pairing_profiles`, { name: 'other profile' })
    const code = (await s.call('POST', `/api/v2${pp}/pairing_key`, {})).json<{
      activation_code: string
    }>().activation_code
    const a = await s.app.inject({
      method: 'POST',
      url: '/agent/v1/activate',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        activation_code: code,
        hostname: 'f-agent',
        interfaces: [{ name: 'eth0', address: '198.18.2.20' }],
      }),
    })
    expect(a.statusCode, a.body).toBe(201)
    agent = a.json()
    const draft = `${O}/sec_policy/draft`
    await made(`${draft}/label_groups`, {
      name: 'f-roles',
      key: 'role',
      labels: [{ href: L['f-web'] }],
    })
    await made(`${draft}/label_groups`, {
      name: 'f-envs',
      key: 'env',
      labels: [{ href: L['f-prod'] }],
    })
    await made(`${draft}/rule_sets`, {
      name: 'f-rs-web',
      scopes: [[{ label: { href: L['f-web'] } }]],
    })
    await made(`${draft}/rule_sets`, {
      name: 'f-rs-db-dev',
      scopes: [[{ label: { href: L['f-db'] } }, { label: { href: L['f-dev'] } }]],
    })
    await made(`${draft}/ip_lists`, {
      name: 'f-ips',
      ip_ranges: [{ from_ip: '198.18.60.0/24' }, { from_ip: '198.18.60.128/25', exclusion: true }],
    })
    await made(`${draft}/ip_lists`, {
      name: 'f-names',
      ip_ranges: [],
      fqdns: [{ fqdn: 'db.example.com' }],
    })
    await made(`${draft}/services`, {
      name: 'f-pg',
      service_ports: [{ port: 5432, proto: 6 }],
    })
    await made(`${draft}/services`, {
      name: 'f-dns',
      service_ports: [{ port: 53, proto: 17 }],
    })
    await made(`${draft}/services`, {
      name: 'f-high',
      service_ports: [{ port: 8000, to_port: 8100, proto: 6 }],
    })
    await made(`${draft}/enforcement_boundaries`, {
      name: 'f-eb-web',
      providers: [{ label: { href: L['f-web'] } }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ port: 23, proto: 6 }],
    })
    await made(`${draft}/enforcement_boundaries`, {
      name: 'f-eb-all',
      providers: [{ actors: 'ams' }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ port: 3389, proto: 6 }],
    })
  })
  afterAll(async () => {
    await s?.close()
    await pg?.stop()
  })

  const labels = (...names: string[][]) =>
    encodeURIComponent(JSON.stringify(names.map((inner) => inner.map((n) => L[n]))))
  const names = async (url: string) => {
    const r = await s.call('GET', url)
    expect(r.statusCode, `${url}: ${r.body}`).toBe(200)
    return r
      .json<{ name?: string; hostname?: string }[]>()
      .map((x) => x.name ?? x.hostname ?? '')
      .filter((n) => n.startsWith('f-'))
      .sort()
  }

  // [collection + query, the f-* names it answers]
  const cases = (): [string, string[]][] => [
    ['/workloads?online=false', ['f-alpha']],
    ['/workloads?online=true', ['f-agent', 'f-beta']],
    ['/workloads?os_id=ubuntu', ['f-alpha']],
    ['/workloads?ip_address=198.18.2.1', ['f-alpha', 'f-beta']],
    ['/workloads?ip_address=2.110', ['f-beta']],
    ['/workloads?ip_address=2001:db8', ['f-beta']],
    ['/workloads?ip_address=198.18.2.10&match_type=exact', ['f-alpha']],
    ['/workloads?policy_health=active', ['f-agent']],
    ['/workloads?managed=True', ['f-agent']],
    ['/workloads?managed=false&include_deleted=true', ['f-alpha', 'f-beta']],
    ['/workloads?last_heartbeat_on[gte]=2020-01-01T00:00:00Z', ['f-agent']],
    ['/workloads?last_heartbeat_on[lte]=2020-01-01T00:00:00Z', []],
    [`/workloads?labels=${labels(['f-web'])}`, ['f-agent', 'f-alpha']],
    [`/workloads?labels=${labels(['f-web', 'f-prod'], ['f-dev'])}`, ['f-alpha', 'f-beta']],
    ['/workloads?security_policy_update_mode=adaptive', ['f-agent']],
    ['/workloads?soft_deleted=true', []],
    [`/vens?labels=${labels(['f-web'])}`, ['f-agent']],
    [`/vens?labels=${labels(['f-db'])}`, []],
    ['/vens?os_id=linux', ['f-agent']],
    ['/vens?version[gte]=0.1.0', ['f-agent']],
    ['/vens?version[gte]=99.0', []],
    ['/vens?status=active', ['f-agent']],
    ['/vens?status=suspended', []],
    ['/vens?ip_address=2.20', ['f-agent']],
    ['/vens?health=healthy', ['f-agent']],
    ['/vens?hostname=f-ag', ['f-agent']],
    ['/sec_policy/draft/label_groups?key=role', ['f-roles']],
    ['/sec_policy/draft/label_groups?key=rol', []],
    [`/sec_policy/draft/rule_sets?labels=${labels(['f-web'])}`, ['f-rs-web']],
    [`/sec_policy/draft/rule_sets?labels=${labels(['f-db', 'f-dev'])}`, ['f-rs-db-dev']],
    [`/sec_policy/draft/rule_sets?labels=${labels(['f-web', 'f-dev'])}`, []],
    ['/sec_policy/draft/ip_lists?ip_address=198.18.60.7', ['f-ips']],
    ['/sec_policy/draft/ip_lists?ip_address=198.18.60.200', []],
    ['/sec_policy/draft/ip_lists?ip_address=198.18.60.0/26', ['f-ips']],
    ['/sec_policy/draft/ip_lists?fqdn=example', ['f-names']],
    ['/sec_policy/draft/services?port=5432', ['f-pg']],
    ['/sec_policy/draft/services?port=8050', ['f-high']],
    ['/sec_policy/draft/services?proto=17', ['f-dns']],
    ['/sec_policy/draft/services?port=53&proto=6', []],
    [`/sec_policy/draft/enforcement_boundaries?labels=${labels(['f-web'])}`, ['f-eb-web']],
    ['/sec_policy/draft/enforcement_boundaries?service_ports.port=3389', ['f-eb-all']],
    ['/sec_policy/draft/enforcement_boundaries?network_type=brn', ['f-eb-all', 'f-eb-web']],
    ['/pairing_profiles?name=f-pair', ['f-pairing']],
    ['/pairing_profiles?name=F-PAIRING&match_type=exact', []],
    [`/pairing_profiles?labels=${labels(['f-web'])}`, ['f-pairing']],
  ]
  it('applies each documented filter', async () => {
    const wrong: string[] = []
    for (const [url, expected] of cases()) {
      const got = await names(`${O}${url}`)
      if (JSON.stringify(got) !== JSON.stringify(expected))
        wrong.push(`${url}: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
    }
    expect(wrong).toEqual([])
  })

  it('filters events by who made them', async () => {
    const byAdmin = (await s.call('GET', `${O}/events?created_by=/users/1`)).json<
      { created_by: Record<string, unknown> }[]
    >()
    expect(byAdmin.length).toBeGreaterThan(0)
    expect(byAdmin.every((e) => 'user' in e.created_by)).toBe(true)
    const ven = (await s.call('GET', `/api/v2${agent.workload_href}`)).json<{ ven: Href }>().ven
    const byVen = (
      await s.call('GET', `${O}/events?created_by=${encodeURIComponent(ven.href)}`)
    ).json<{ event_type: string; created_by: Record<string, unknown> }[]>()
    expect(byVen.map((e) => e.event_type)).toContain('agent.activate')
    expect(byVen.every((e) => !('user' in e.created_by))).toBe(true)
    expect((await s.call('GET', `${O}/events?created_by=/users/999`)).json()).toEqual([])
  })

  it('shows label usage on request, and takes include_deleted', async () => {
    const plain = (await s.call('GET', `${O}/labels?value=f-`)).json<Record<string, unknown>[]>()
    expect(plain.every((l) => !('usage' in l))).toBe(true)
    const used = (await s.call('GET', `${O}/labels?value=f-&usage=true&include_deleted=true`)).json<
      { value: string; usage: Record<string, boolean> }[]
    >()
    expect(used).toHaveLength(4)
    const web = used.find((l) => l.value === 'f-web')?.usage
    expect(web).toMatchObject({ label_group: true, ruleset: true, pairing_profile: true })
    expect(used.find((l) => l.value === 'f-dev')?.usage).toMatchObject({
      label_group: false,
      pairing_profile: false,
    })
    const groups = (
      await s.call('GET', `${O}/sec_policy/draft/label_groups?usage=true&name=f-`)
    ).json<{ usage: Record<string, boolean> }[]>()
    expect(groups.every((g) => typeof g.usage === 'object')).toBe(true)
  })

  it('refuses an unknown query parameter on every collection, naming it and the known ones', async () => {
    for (const path of [
      '/labels',
      '/label_dimensions',
      '/workloads',
      '/vens',
      '/pairing_profiles',
      '/events',
      '/jobs',
      '/sec_policy/draft/label_groups',
      '/sec_policy/draft/rule_sets',
      '/sec_policy/draft/ip_lists',
      '/sec_policy/draft/services',
      '/sec_policy/draft/enforcement_boundaries',
      '/traffic_flows/async_queries',
      '/service_accounts',
      '/api_keys',
    ]) {
      const r = await s.call('GET', `${O}${path}?colour=red`)
      expect(r.statusCode, path).toBe(406)
      expect(r.headers['content-type']).toBe('application/json')
      const [issue] = r.json<Issue[]>()
      expect(issue?.token, path).toBe('unknown_query_parameter')
      expect(issue?.message, path).toContain("'colour'")
      expect(issue?.message, path).toContain('max_results')
    }
    const none = await s.call('GET', '/api/v2/product_version?x=1')
    expect(none.json<Issue[]>()[0]?.message).toContain('takes no query parameters')
  })

  it('refuses a bad value, naming the parameter, the value and the form expected', async () => {
    const cases: [string, string][] = [
      ['/workloads?online=maybe', 'online'],
      ['/workloads?labels=web', 'labels'],
      ['/workloads?enforcement_mode=strict', 'enforcement_mode'],
      ['/workloads?last_heartbeat_on[gte]=yesterday', 'last_heartbeat_on[gte]'],
      ['/vens?version[gte]=one', 'version[gte]'],
      ['/sec_policy/draft/services?port=70000', 'port'],
      ['/sec_policy/draft/services?proto=tcp', 'proto'],
      ['/labels?max_results=-1', 'max_results'],
    ]
    for (const [url, name] of cases) {
      const r = await s.call('GET', `${O}${url}`)
      expect(r.statusCode, url).toBe(406)
      const [issue] = r.json<Issue[]>()
      expect(issue?.token, url).toBe('invalid_query_parameter')
      expect(issue?.message, url).toContain(name)
    }
  })
})
