/**
 * The policy semantics through the REST API, on both stores: exclusions in rules and scopes,
 * every rule field stored and returned (or refused with a 406 naming it), workload fields,
 * virtual services and service bindings as rule providers, inline rules in rule sets. What
 * is honoured is read where it lands: the host policy an agent fetches.
 */
import { describe, expect, it } from 'vitest'
import type { TestServer } from './test-server.fixture.js'
import { serverOn } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'
type Json = Record<string, unknown>
interface HostRule {
  direction: string
  action: string
  peers: { v4: string[]; v6: string[] } | 'any'
  services: { proto: number; port?: number }[]
}
interface Agent {
  agent_id: string
  token: string
  workload_href: string
}

describe.each(['sqlite', 'postgres'] as const)(
  'policy semantics through the API on %s',
  (dialect) => {
    let s: TestServer
    serverOn(dialect, (server) => (s = server))

    /** A call that must answer `want`; its body. */
    const ok = async (
      method: 'GET' | 'POST' | 'PUT' | 'DELETE',
      url: string,
      body: unknown,
      want: number,
    ) => {
      const r = await s.call(method, url, body)
      expect(r.statusCode, `${method} ${url}: ${r.body}`).toBe(want)
      return r.body ? (r.json() as Json) : {}
    }
    /** A call that must be refused with a 406 whose message names `path`. */
    const refused = async (method: 'POST' | 'PUT', url: string, body: unknown, path: string) => {
      const r = await s.call(method, url, body)
      expect(r.statusCode, `${method} ${url} ${JSON.stringify(body)}: ${r.body}`).toBe(406)
      const messages = (r.json() as { message: string }[]).map((i) => i.message)
      expect(
        messages.some((m) => m.startsWith(`${path}:`) || m.startsWith(`${path}.`)),
        messages.join('; '),
      ).toBe(true)
      return messages.join('; ')
    }
    const label = async (key: string, value: string) =>
      String((await ok('POST', `${O}/labels`, { key, value }, 201)).href)
    const ruleSet = async (name: string, scopes: unknown[] = []) =>
      String((await ok('POST', `${O}/sec_policy/draft/rule_sets`, { name, scopes }, 201)).href)
    const provision = () => ok('POST', `${O}/sec_policy`, { update_description: 'test' }, 201)

    let hostNo = 0
    /** A paired host with these labels, at 198.18.<net>.<n> and fd00:<net>::<n>. */
    const host = async (
      net: number,
      labels: string[],
    ): Promise<Agent & { ip4: string; ip6: string }> => {
      const p = await ok(
        'POST',
        `${O}/pairing_profiles`,
        {
          name: `host ${++hostNo}`,
          enforcement_mode: 'full',
          labels: labels.map((href) => ({ href })),
        },
        201,
      )
      const key = await ok('POST', `/api/v2${String(p.href)}/pairing_key`, {}, 200)
      const [ip4, ip6] = [`198.18.${net}.${hostNo}`, `fd00:${net}::${hostNo}`]
      const r = await s.app.inject({
        method: 'POST',
        url: '/agent/v1/activate',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          activation_code: key.activation_code,
          hostname: `semantics-${hostNo}`,
          interfaces: [
            { name: 'eth0', address: ip4 },
            { name: 'eth0', address: ip6 },
          ],
        }),
      })
      expect(r.statusCode, r.body).toBe(201)
      return { ...(r.json() as Agent), ip4, ip6 }
    }
    /** The host's inbound rules on a TCP port, from the policy its agent fetches. */
    const inbound = async (a: Agent, port: number) => {
      const r = await s.app.inject({
        url: `/agent/v1/agents/${a.agent_id}/policy?wait=0`,
        headers: { authorization: `Bearer ${a.token}` },
      })
      expect(r.statusCode, r.body).toBe(200)
      return (r.json() as { policy: { rules: HostRule[] } }).policy.rules.filter(
        (x) =>
          x.direction === 'inbound' && x.services.some((p) => p.proto === 6 && p.port === port),
      )
    }
    /** The addresses a host admits on a port (allow rules), sorted. */
    const admits = async (a: Agent, port: number) =>
      (await inbound(a, port))
        .filter((x) => x.action === 'allow')
        .flatMap((x) => (x.peers === 'any' ? ['any'] : [...x.peers.v4, ...x.peers.v6]))
        .sort()

    it('honours an excluded label in a rule and in a scope, and returns both as written', async () => {
      const web = await label('role', 'x-web')
      const app = await label('role', 'x-app')
      const db = await label('role', 'x-db')
      const hosts = {
        web: await host(30, [web]),
        app: await host(30, [app]),
        db: await host(30, [db]),
      }
      const rs = await ruleSet('except db')
      const rule = await ok(
        'POST',
        `/api/v2${rs}/sec_rules`,
        {
          providers: [{ label: { href: web } }],
          consumers: [{ label: { href: db }, exclusion: true }],
          ingress_services: [{ proto: 6, port: 7001 }],
        },
        201,
      )
      expect((await ok('GET', `/api/v2${String(rule.href)}`, undefined, 200)).consumers).toEqual([
        { label: { href: db }, exclusion: true },
      ])
      // a label group of one type, excluded, reads the same way
      const group = await ok(
        'POST',
        `${O}/sec_policy/draft/label_groups`,
        { name: 'x-dbs', key: 'role', labels: [{ href: db }] },
        201,
      )
      await ok(
        'POST',
        `/api/v2${rs}/sec_rules`,
        {
          providers: [{ label: { href: web } }],
          consumers: [{ label_group: { href: group.href }, exclusion: true }],
          ingress_services: [{ proto: 6, port: 7003 }],
        },
        201,
      )
      // without a role label, a workload is not "a role but db" (the vendor's all-but)
      const unlabelled = await host(30, [])
      const scoped = await ruleSet('not app', [[{ label: { href: app }, exclusion: true }]])
      await ok(
        'POST',
        `/api/v2${scoped}/sec_rules`,
        {
          providers: [{ actors: 'ams' }],
          consumers: [{ actors: 'ams' }],
          ingress_services: [{ proto: 6, port: 7002 }],
        },
        201,
      )
      expect((await ok('GET', `/api/v2${scoped}`, undefined, 200)).scopes).toEqual([
        [{ label: { href: app }, exclusion: true }],
      ])
      await provision()
      // all workloads with a role but db: web itself and app, over both families
      expect(await admits(hosts.web, 7001)).toEqual(
        [hosts.web, hosts.app].flatMap((h) => [`${h.ip4}/32`, `${h.ip6}/128`]).sort(),
      )
      expect(await admits(hosts.web, 7003), 'the same through an excluded label group').toEqual(
        await admits(hosts.web, 7001),
      )
      expect(await admits(hosts.db, 7001), 'db provides nothing on 7001').toEqual([])
      expect(await admits(unlabelled, 7002), 'no role label: outside an all-but scope').toEqual([])
      // the scope holds every role but app: app neither provides nor is a peer
      expect(await admits(hosts.app, 7002)).toEqual([])
      for (const h of [hosts.web, hosts.db])
        expect(await admits(h, 7002)).toEqual(
          [hosts.web, hosts.db].flatMap((x) => [`${x.ip4}/32`, `${x.ip6}/128`]).sort(),
        )
      // where an exclusion cannot stand, the 406 says which and why
      const ipList = String(
        (
          await ok(
            'POST',
            `${O}/sec_policy/draft/ip_lists`,
            { name: 'x-ips', ip_ranges: [{ from_ip: '198.18.99.0/24' }] },
            201,
          )
        ).href,
      )
      const side = { providers: [{ label: { href: web } }], ingress_services: [] }
      const url = `/api/v2${rs}/sec_rules`
      expect(
        await refused(
          'POST',
          url,
          { ...side, consumers: [{ ip_list: { href: ipList }, exclusion: true }] },
          '$.consumers[0].exclusion',
        ),
      ).toMatch(/only on a label or label_group actor/)
      expect(
        await refused(
          'POST',
          url,
          { ...side, consumers: [{ actors: 'ams' }, { label: { href: db }, exclusion: true }] },
          '$.consumers',
        ),
      ).toMatch(/cannot be combined/)
      expect(
        await refused(
          'POST',
          url,
          {
            ...side,
            consumers: [{ label: { href: db } }, { label: { href: db }, exclusion: true }],
          },
          '$.consumers',
        ),
      ).toMatch(/matches nothing/)
      await refused(
        'POST',
        `${O}/sec_policy/draft/rule_sets`,
        { name: 'bad', scopes: [[{ label: { href: app }, exclusion: 'yes' }]] },
        '$.scopes[0][0].exclusion',
      )
      expect(
        (await ok('GET', url, undefined, 200)) as unknown as unknown[],
        'nothing refused was stored',
      ).toHaveLength(2)
    })

    it('stores and returns every rule field it accepts, and refuses with 406 what it cannot honour', async () => {
      const a = await label('role', 'f-a')
      const b = await label('role', 'f-b')
      const rs = await ruleSet('fields')
      const url = `/api/v2${rs}/sec_rules`
      const sides = {
        providers: [{ label: { href: a } }],
        consumers: [{ label: { href: b } }],
        ingress_services: [{ proto: 6, port: 443 }],
      }
      const full = {
        ...sides,
        enabled: false,
        description: 'tls from b',
        external_data_set: 'terraform',
        external_data_reference: 'rule-17',
        network_type: 'all',
        unscoped_consumers: true,
        use_workload_subnets: ['providers', 'consumers'],
        resolve_labels_as: {
          providers: ['workloads', 'virtual_services'],
          consumers: ['workloads'],
        },
        sec_connect: false,
        stateless: false,
        machine_auth: false,
        consuming_security_principals: [],
      }
      const href = String((await ok('POST', url, full, 201)).href)
      expect(await ok('GET', `/api/v2${href}`, undefined, 200)).toMatchObject({ ...full, href })
      await ok(
        'PUT',
        `/api/v2${href}`,
        { description: 'changed', external_data_reference: null, network_type: 'brn' },
        204,
      )
      expect(await ok('GET', `/api/v2${href}`, undefined, 200)).toMatchObject({
        description: 'changed',
        external_data_set: 'terraform',
        external_data_reference: null,
        network_type: 'brn',
        use_workload_subnets: ['providers', 'consumers'],
      })
      // defaults, as the vendor returns them
      const plain = String((await ok('POST', url, sides, 201)).href)
      expect(await ok('GET', `/api/v2${plain}`, undefined, 200)).toMatchObject({
        enabled: true,
        description: '',
        external_data_set: null,
        external_data_reference: null,
        network_type: 'brn',
        use_workload_subnets: [],
        resolve_labels_as: { providers: ['workloads'], consumers: ['workloads'] },
        sec_connect: false,
        stateless: false,
        machine_auth: false,
      })
      const deny = String(
        (
          await ok(
            'POST',
            `/api/v2${rs}/deny_rules`,
            {
              ...sides,
              description: 'no b',
              external_data_set: 'tf',
              network_type: 'all',
              override: true,
            },
            201,
          )
        ).href,
      )
      expect(await ok('GET', `/api/v2${deny}`, undefined, 200)).toMatchObject({
        description: 'no b',
        external_data_set: 'tf',
        network_type: 'all',
        override: true,
      })
      // each field Palisade cannot honour is named, with why
      for (const [field, value, path] of [
        ['sec_connect', true, '$.sec_connect'],
        ['stateless', true, '$.stateless'],
        ['machine_auth', true, '$.machine_auth'],
        ['network_type', 'non_brn', '$.network_type'],
        [
          'consuming_security_principals',
          [{ href: '/orgs/1/security_principals/1' }],
          '$.consuming_security_principals',
        ],
        [
          'resolve_labels_as',
          { providers: ['workloads'], consumers: ['virtual_services'] },
          '$.resolve_labels_as.consumers',
        ],
        ['use_workload_subnets', ['both'], '$.use_workload_subnets'],
        ['description', 7, '$.description'],
        ['no_such_field', 1, '$.no_such_field'],
      ] as const) {
        await refused('POST', url, { ...sides, [field]: value }, path)
        await refused('PUT', `/api/v2${href}`, { [field]: value }, path)
      }
      await refused(
        'POST',
        `/api/v2${rs}/deny_rules`,
        { ...sides, use_workload_subnets: [] },
        '$.use_workload_subnets',
      )
      expect(
        (await ok('GET', url, undefined, 200)) as unknown as unknown[],
        'nothing refused was stored',
      ).toHaveLength(2)
      expect(await ok('GET', `/api/v2${href}`, undefined, 200)).toMatchObject({
        description: 'changed',
        sec_connect: false,
      })
    })

    it('keeps workload descriptions and interface details, and a rule may use the subnets', async () => {
      const peer = await label('role', 'w-peer')
      const srv = await label('role', 'w-srv')
      const server = await host(31, [srv])
      const w = await ok(
        'POST',
        `${O}/workloads`,
        {
          name: 'subnet peer',
          description: 'a peer on its own network',
          labels: [{ href: peer }],
          interfaces: [
            { name: 'eth0', address: '198.18.41.5/24', default_gateway_address: '198.18.41.1' },
            {
              name: 'eth1',
              address: 'fd00:41::5',
              cidr_block: 64,
              link_state: 'up',
              friendly_name: 'data',
            },
          ],
        },
        201,
      )
      const href = `/api/v2${String(w.href)}`
      expect(await ok('GET', href, undefined, 200)).toMatchObject({
        description: 'a peer on its own network',
        interfaces: [
          {
            name: 'eth0',
            address: '198.18.41.5',
            cidr_block: 24,
            default_gateway_address: '198.18.41.1',
          },
          {
            name: 'eth1',
            address: 'fd00:41::5',
            cidr_block: 64,
            default_gateway_address: null,
            friendly_name: 'data',
          },
        ],
      })
      await ok('PUT', href, { description: 'moved' }, 204)
      expect((await ok('GET', href, undefined, 200)).description).toBe('moved')
      await refused(
        'PUT',
        href,
        { interfaces: [{ name: 'eth0', address: '198.18.41.5/24', cidr_block: 16 }] },
        '$.interfaces[0].cidr_block',
      )
      await refused(
        'PUT',
        href,
        {
          interfaces: [
            { name: 'eth0', address: '198.18.41.5', default_gateway_address: 'fd00::1' },
          ],
        },
        '$.interfaces[0].default_gateway_address',
      )
      await refused(
        'PUT',
        href,
        { interfaces: [{ name: 'eth0', address: '198.18.41.5/33' }] },
        '$.interfaces[0].address',
      )
      await refused('PUT', href, { description: ['x'] }, '$.description')
      expect((await ok('GET', href, undefined, 200)).interfaces).toHaveLength(2)
      const rs = await ruleSet('subnets')
      const rule = { providers: [{ label: { href: srv } }], consumers: [{ label: { href: peer } }] }
      await ok(
        'POST',
        `/api/v2${rs}/sec_rules`,
        { ...rule, ingress_services: [{ proto: 6, port: 7101 }] },
        201,
      )
      await ok(
        'POST',
        `/api/v2${rs}/sec_rules`,
        {
          ...rule,
          ingress_services: [{ proto: 6, port: 7102 }],
          use_workload_subnets: ['consumers'],
        },
        201,
      )
      await provision()
      expect(await admits(server, 7101), 'the peer by its addresses').toEqual([
        '198.18.41.5/32',
        'fd00:41::5/128',
      ])
      expect(await admits(server, 7102), 'the peer by its subnets').toEqual([
        '198.18.41.0/24',
        'fd00:41::/64',
      ])
    })

    it('enforces a provisioned virtual service on the workloads bound to it, and bindings list, filter and go', async () => {
      const client = await label('role', 'vs-client')
      const vsLabel = await label('role', 'vs-svc')
      const clientHost = await host(32, [client])
      const boundHost = await host(32, [])
      const otherHost = await host(32, [])
      const vs = await ok(
        'POST',
        `${O}/sec_policy/draft/virtual_services`,
        {
          name: 'payments',
          description: 'the payments API',
          labels: [{ href: vsLabel }],
          service_ports: [{ proto: 6, port: 8443 }],
        },
        201,
      )
      const draft = String(vs.href)
      expect(await ok('GET', `/api/v2${draft}`, undefined, 200)).toMatchObject({
        name: 'payments',
        description: 'the payments API',
        apply_to: 'host_only',
        service_ports: [{ proto: 6, port: 8443 }],
        labels: [{ href: vsLabel }],
        ip_overrides: [],
        service_addresses: [],
      })
      await refused(
        'POST',
        `${O}/sec_policy/draft/virtual_services`,
        {
          name: 'bridge',
          service_ports: [{ proto: 6, port: 1 }],
          apply_to: 'internal_bridge_network',
        },
        '$.apply_to',
      )
      const binding = (workload: Agent, vsHref: string, more: Json = {}) => ({
        virtual_service: { href: vsHref },
        workload: { href: workload.workload_href },
        ...more,
      })
      // bindings name the active virtual service: a draft one is refused until provisioned
      await refused(
        'POST',
        `${O}/service_bindings`,
        [binding(boundHost, draft)],
        '$[0].virtual_service',
      )
      const rs = await ruleSet('to the vip')
      const url = `/api/v2${rs}/sec_rules`
      await ok(
        'POST',
        url,
        {
          providers: [{ virtual_service: { href: draft } }],
          consumers: [{ label: { href: client } }],
          ingress_services: [],
        },
        201,
      )
      await ok(
        'POST',
        url,
        {
          providers: [{ label: { href: vsLabel } }],
          consumers: [{ label: { href: client } }],
          ingress_services: [],
          resolve_labels_as: { providers: ['virtual_services'], consumers: ['workloads'] },
        },
        201,
      )
      await refused(
        'POST',
        url,
        {
          providers: [{ label: { href: vsLabel } }],
          consumers: [{ virtual_service: { href: draft } }],
          ingress_services: [],
        },
        '$.consumers[0].virtual_service',
      )
      await provision()
      const active = draft.replace('/draft/', '/active/')
      expect(await admits(boundHost, 8443), 'nothing bound yet').toEqual([])
      const created = (await ok(
        'POST',
        `${O}/service_bindings`,
        [binding(boundHost, active, { external_data_set: 'cmdb', external_data_reference: 'b-1' })],
        201,
      )) as unknown as { href: string }[]
      expect(created).toHaveLength(1)
      const clientPeers = [`${clientHost.ip4}/32`, `${clientHost.ip6}/128`]
      // two rules name it (by href, and by label resolved as virtual services): both reach the host
      expect(await admits(boundHost, 8443)).toEqual([...clientPeers, ...clientPeers].sort())
      expect(await admits(otherHost, 8443), 'an unbound host provides nothing').toEqual([])
      const list = (q: string) =>
        ok('GET', `${O}/service_bindings${q}`, undefined, 200) as unknown as Promise<Json[]>
      expect(await list('')).toEqual([
        expect.objectContaining({
          href: created[0]?.href,
          virtual_service: expect.objectContaining({ href: active }) as unknown,
          workload: expect.objectContaining({ href: boundHost.workload_href }) as unknown,
          external_data_set: 'cmdb',
          external_data_reference: 'b-1',
        }),
      ])
      expect(await list(`?virtual_service=${encodeURIComponent(active)}`)).toHaveLength(1)
      expect(
        await list(`?virtual_service=${encodeURIComponent(draft)}`),
        'any version of its href',
      ).toHaveLength(1)
      expect(await list(`?workload=${encodeURIComponent(boundHost.workload_href)}`)).toHaveLength(1)
      expect(await list(`?workload=${encodeURIComponent(otherHost.workload_href)}`)).toEqual([])
      expect(await list('?external_data_reference=b-1')).toHaveLength(1)
      expect(await list('?external_data_reference=b-2')).toEqual([])
      expect((await s.call('GET', `${O}/service_bindings?no_such_filter=1`)).statusCode).toBe(406)
      expect(await ok('GET', `/api/v2${created[0]?.href}`, undefined, 200)).toMatchObject({
        href: created[0]?.href,
      })
      await ok('DELETE', `/api/v2${created[0]?.href}`, undefined, 204)
      expect(await list('')).toEqual([])
      expect(await admits(boundHost, 8443), 'the binding gone, so is the rule').toEqual([])
      expect((await s.call('DELETE', `/api/v2${created[0]?.href}`)).statusCode).toBe(404)
    })

    it('creates and replaces a rule set with its rules inline', async () => {
      const a = await label('role', 'i-a')
      const b = await label('role', 'i-b')
      const rule = (port: number, description: string) => ({
        providers: [{ label: { href: a } }],
        consumers: [{ label: { href: b }, exclusion: true }],
        ingress_services: [{ proto: 6, port }],
        description,
      })
      const rs = await ok(
        'POST',
        `${O}/sec_policy/draft/rule_sets`,
        { name: 'inline', scopes: [], rules: [rule(1, 'one'), rule(2, 'two')] },
        201,
      )
      const href = `/api/v2${String(rs.href)}`
      const got = (await ok('GET', href, undefined, 200)).rules as Json[]
      expect(got.map((r) => [r.description, r.ingress_services, r.consumers])).toEqual([
        ['one', [{ proto: 6, port: 1 }], [{ label: { href: b }, exclusion: true }]],
        ['two', [{ proto: 6, port: 2 }], [{ label: { href: b }, exclusion: true }]],
      ])
      const [first, second] = got.map((r) => String(r.href))
      await ok(
        'PUT',
        href,
        { rules: [{ ...rule(3, 'one, now 3'), href: second }, rule(4, 'four')] },
        204,
      )
      const after = (await ok('GET', href, undefined, 200)).rules as Json[]
      expect(after.map((r) => [r.href === second, r.description])).toEqual([
        [true, 'one, now 3'],
        [false, 'four'],
      ])
      expect(
        after.some((r) => r.href === first),
        'a rule left out of the list is gone',
      ).toBe(false)
      await refused(
        'PUT',
        href,
        { rules: [{ ...rule(5, 'x'), href: `${String(rs.href)}/sec_rules/999` }] },
        '$.rules[0].href',
      )
      await refused(
        'PUT',
        href,
        { rules: [{ ...rule(5, 'x'), sec_connect: true }] },
        '$.rules[0].sec_connect',
      )
      expect(
        ((await ok('GET', href, undefined, 200)).rules as Json[]).map((r) => r.description),
      ).toEqual(['one, now 3', 'four'])
    })
  },
)
