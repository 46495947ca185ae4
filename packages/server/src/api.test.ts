import { describe, expect, it } from 'vitest'
import type { TestServer } from './test-server.fixture.js'
import { serverOn, testServer } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'

// The whole suite runs on both stores: one query layer, one set of migrations.
describe.each(['sqlite', 'postgres'] as const)('REST API on %s', (dialect) => {
  let s: TestServer
  serverOn(dialect, (server) => (s = server))

  const label = async (key: string, value: string) => {
    const r = await s.call('POST', `${O}/labels`, { key, value })
    expect(r.statusCode, r.body).toBe(201)
    return (r.json() as { href: string }).href
  }

  it('answers health and version without credentials, everything else only with them', async () => {
    expect((await s.app.inject({ url: '/api/v2/health' })).statusCode).toBe(200)
    expect((await s.app.inject({ url: '/api/v2/product_version' })).json()).toMatchObject({
      version: '25.2.10',
    })
    const r = await s.app.inject({ url: `${O}/labels` })
    expect(r.statusCode).toBe(401)
    expect(r.json()).toEqual([
      { token: 'authentication_required', message: expect.any(String) as string },
    ])
    const bad = await s.app.inject({
      url: `${O}/labels`,
      headers: { authorization: `Basic ${Buffer.from('api_x:nope').toString('base64')}` },
    })
    expect(bad.statusCode).toBe(401)
    expect((await s.call('GET', '/api/v2/orgs/2/labels')).statusCode).toBe(403)
  })

  it('speaks the vendor conventions: exact Content-Type, X-Total-Count, max_results, 404s', async () => {
    await label('role', 'conv-a')
    await label('role', 'conv-b')
    const r = await s.call('GET', `${O}/labels?key=role&value=conv`)
    expect(r.headers['content-type']).toBe('application/json')
    expect(r.headers['x-total-count']).toBe('2')
    const none = await s.call('GET', `${O}/labels?max_results=0&value=conv`)
    expect([none.json(), none.headers['x-total-count']]).toEqual([[], '2'])
    expect((await s.call('GET', `${O}/labels?value=conv-a&match_type=exact`)).json()).toHaveLength(
      1,
    )
    // partial matching ignores case and takes % and _ as themselves, not as wildcards
    await label('role', 'Conv_X%')
    await label('role', 'convaXb')
    const like = await s.call('GET', `${O}/labels?value=${encodeURIComponent('v_x%')}`)
    expect((like.json() as { value: string }[]).map((l) => l.value)).toEqual(['Conv_X%'])
    expect(like.headers['x-total-count']).toBe('1')
    expect((await s.call('GET', `${O}/labels/999999`)).statusCode).toBe(404)
    expect((await s.call('GET', `${O}/nothing`)).statusCode).toBe(404)
  })

  it('edits every kind of policy object in place, into the draft, with an audit event each', async () => {
    const web = await label('role', 'edit-web')
    const other = await label('role', 'edit-other')
    const cases: [type: string, create: object, change: object][] = [
      [
        'services',
        { name: 'edit-svc', service_ports: [{ port: 80, proto: 6 }] },
        { service_ports: [{ port: 8080, proto: 6 }] },
      ],
      [
        'ip_lists',
        { name: 'edit-ips', ip_ranges: [{ from_ip: '198.18.9.0/24' }] },
        { ip_ranges: [{ from_ip: '198.18.10.0/24' }] },
      ],
      [
        'label_groups',
        { name: 'edit-lg', key: 'role', labels: [{ href: web }] },
        { labels: [{ href: other }] },
      ],
      ['rule_sets', { name: 'edit-rs', scopes: [] }, { scopes: [[{ label: { href: web } }]] }],
      [
        'enforcement_boundaries',
        {
          name: 'edit-eb',
          providers: [{ actors: 'ams' }],
          consumers: [{ actors: 'ams' }],
          ingress_services: [{ port: 23, proto: 6 }],
        },
        { ingress_services: [{ port: 2323, proto: 6 }] },
      ],
    ]
    const made: string[] = []
    for (const [type, create, change] of cases) {
      const r = await s.call('POST', `${O}/sec_policy/draft/${type}`, create)
      expect(r.statusCode, `${type}: ${r.body}`).toBe(201)
      const href = (r.json() as { href: string }).href
      made.push(href)
      const put = await s.call('PUT', `/api/v2${href}`, change)
      expect(put.statusCode, `${type}: ${put.body}`).toBe(204)
      const got = (await s.call('GET', `/api/v2${href}`)).json() as Record<string, unknown>
      expect(got, type).toMatchObject({ ...create, ...change })
    }
    const updates = (await s.call('GET', `${O}/events?max_results=200`)).json() as {
      event_type: string
    }[]
    for (const t of ['service', 'ip_list', 'label_group', 'rule_set', 'enforcement_boundary'])
      expect(updates.map((e) => e.event_type)).toContain(`${t}.update`)
    // never provisioned, so deleting leaves nothing pending for the tests after this one
    for (const href of made) expect((await s.call('DELETE', `/api/v2${href}`)).statusCode).toBe(204)
  })

  it('answers Prefer: respond-async with a job and a datafile, at a relative Location', async () => {
    const r = await s.call('GET', `${O}/labels`, undefined, { prefer: 'respond-async' })
    expect(r.statusCode).toBe(202)
    expect(r.headers.location).toMatch(/^\/orgs\/1\/jobs\/[0-9a-f-]{36}$/)
    expect(r.headers['retry-after']).toBe('1')
    const job = (await s.call('GET', `/api/v2${String(r.headers.location)}`)).json() as {
      status: string
      result: { href: string }
    }
    expect(job.status).toBe('done')
    const data = (await s.call('GET', `/api/v2${job.result.href}`)).json() as unknown[]
    expect(data.length).toBe(Number((await s.call('GET', `${O}/labels`)).headers['x-total-count']))
  })

  it('records every change as an audit event with who and before/after; events cannot be changed', async () => {
    const href = await label('env', 'audit')
    expect((await s.call('PUT', `/api/v2${href}`, { value: 'audited' })).statusCode).toBe(204)
    const events = (await s.call('GET', `${O}/events?event_type=label.update`)).json() as {
      created_by: unknown
      resource_changes: { changes: Record<string, unknown> }[]
    }[]
    expect(events[0]?.created_by).toEqual({
      user: { href: expect.stringMatching(/^\/users\/\d+$/) as string, username: 'admin' },
    })
    expect(events[0]?.resource_changes[0]?.changes.value).toEqual({
      before: 'audit',
      after: 'audited',
    })
    const uuid = (await s.call('GET', `${O}/events?max_results=1`)).json() as { href: string }[]
    expect((await s.call('DELETE', `/api/v2${uuid[0]?.href}`)).statusCode).toBe(404)
    expect((await s.call('PUT', `/api/v2${uuid[0]?.href}`, {})).statusCode).toBe(404)
    expect((await s.call('GET', `${O}/events?severity=critical`)).statusCode).toBe(406)
  })

  it('validates firewall settings, keeps them in draft until provisioned, and shows each workload its mode', async () => {
    const web = await label('role', 'fw-web')
    const prod = await label('env', 'fw-prod')
    const dev = await label('env', 'fw-dev')
    const before = (
      await s.call('GET', `${O}/sec_policy/draft/firewall_settings`)
    ).json() as Record<string, unknown>
    // bad input: every problem named, nothing stored
    const bad = await s.call('PUT', `${O}/sec_policy/draft/firewall_settings`, {
      firewall_coexistence: [
        { scope: [{ href: prod }, { href: dev }], illumio_primary: true },
        {
          scope: [{ href: '/orgs/1/labels/424242' }],
          illumio_primary: 'yes',
          workload_mode: 'enforcing',
        },
      ],
    })
    expect(bad.statusCode).toBe(406)
    expect((bad.json() as { token: string }[]).map((i) => i.token).sort()).toEqual([
      'input_validation_error',
      'input_validation_error',
      'invalid_label',
      'invalid_scope',
    ])
    expect((await s.call('GET', `${O}/sec_policy/draft/firewall_settings`)).json()).toEqual(before)
    // a workload in scope
    const w = await s.call('POST', `${O}/workloads`, {
      name: 'fw-w1',
      labels: [{ href: web }, { href: prod }],
      interfaces: [{ name: 'eth0', address: '198.18.0.50' }],
      enforcement_mode: 'full',
    })
    expect(w.statusCode, w.body).toBe(201)
    const wl = w.json() as { href: string; firewall_coexistence: unknown }
    expect(wl.firewall_coexistence).toBeNull()
    const ok = await s.call('PUT', `${O}/sec_policy/draft/firewall_settings`, {
      firewall_coexistence: [
        {
          scope: [{ href: web }, { href: prod }],
          illumio_primary: true,
          workload_mode: 'enforced',
        },
      ],
    })
    expect(ok.statusCode, ok.body).toBe(204)
    const draft = (await s.call('GET', `${O}/sec_policy/draft/firewall_settings`)).json() as {
      update_type: string
      ike_authentication_type: string
    }
    expect(draft.update_type).toBe('update')
    expect(draft.ike_authentication_type).toBe('psk') // other fields are kept
    expect(
      ((await s.call('GET', `/api/v2${wl.href}`)).json() as { firewall_coexistence: unknown })
        .firewall_coexistence,
    ).toBeNull()
    const prov = await s.call('POST', `${O}/sec_policy`, {
      update_description: 'coexistence for web/prod',
      change_subset: {
        firewall_settings: [{ href: '/orgs/1/sec_policy/draft/firewall_settings' }],
      },
    })
    expect(prov.statusCode, prov.body).toBe(201)
    expect(prov.json()).toMatchObject({
      href: expect.stringMatching(/^\/orgs\/1\/sec_policy\/\d+$/) as string,
      commit_message: 'coexistence for web/prod',
      object_counts: { firewall_settings: 1 },
    })
    const shown = (await s.call('GET', `/api/v2${wl.href}`)).json() as {
      firewall_coexistence: unknown
      palisade: { firewall_mode_reason: string }
    }
    expect(shown.firewall_coexistence).toEqual({ illumio_primary: true })
    expect(shown.palisade.firewall_mode_reason).toMatch(/matched coexistence scope #1/)
    expect(
      (
        (await s.call('GET', `${O}/sec_policy/active/firewall_settings`)).json() as {
          firewall_coexistence: unknown[]
        }
      ).firewall_coexistence,
    ).toHaveLength(1)
    // visibility_only is not "enforced": the scope no longer matches
    expect(
      (await s.call('PUT', `/api/v2${wl.href}`, { enforcement_mode: 'visibility_only' }))
        .statusCode,
    ).toBe(204)
    expect(
      ((await s.call('GET', `/api/v2${wl.href}`)).json() as { firewall_coexistence: unknown })
        .firewall_coexistence,
    ).toBeNull()
    const ev = (await s.call('GET', `${O}/events?event_type=firewall_settings.update`)).json() as {
      resource_changes: {
        changes: { firewall_coexistence: { before: unknown[]; after: unknown[] } }
      }[]
    }[]
    expect(ev[0]?.resource_changes[0]?.changes.firewall_coexistence.before).toEqual([])
    expect(ev[0]?.resource_changes[0]?.changes.firewall_coexistence.after).toHaveLength(1)
    expect(
      ((await s.call('GET', `${O}/events?event_type=sec_policy.create`)).json() as unknown[])
        .length,
    ).toBeGreaterThan(0)
    expect((await s.call('POST', `${O}/sec_policy`, {})).json()).toEqual([
      { token: 'nothing_to_provision', message: expect.any(String) as string },
    ])
  })

  it('builds rule sets with allow, deny and override-deny rules, and refuses to provision a rule without its IP list', async () => {
    const db = await label('role', 'rs-db')
    const list = await s.call('POST', `${O}/sec_policy/draft/ip_lists`, {
      name: 'corp',
      ip_ranges: [{ from_ip: '198.19.0.0/16' }, { from_ip: '198.19.1.0/24', exclusion: true }],
    })
    expect(list.statusCode, list.body).toBe(201)
    const rs = await s.call('POST', `${O}/sec_policy/draft/rule_sets`, {
      name: 'db',
      scopes: [[{ label: { href: db } }]],
    })
    expect(rs.statusCode, rs.body).toBe(201)
    const rsHref = (rs.json() as { href: string }).href
    const allow = await s.call('POST', `/api/v2${rsHref}/sec_rules`, {
      providers: [{ label: { href: db } }],
      consumers: [{ ip_list: { href: (list.json() as { href: string }).href } }],
      ingress_services: [{ port: 5432, proto: 6 }],
    })
    expect(allow.statusCode, allow.body).toBe(201)
    const deny = await s.call('POST', `/api/v2${rsHref}/deny_rules`, {
      providers: [{ label: { href: db } }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ port: 22, proto: 6 }],
      override: true,
    })
    expect(deny.statusCode, deny.body).toBe(201)
    const got = (await s.call('GET', `/api/v2${rsHref}`)).json() as {
      rules: { href: string }[]
      deny_rules: { href: string; override: boolean }[]
      update_type: string
    }
    expect(got.rules[0]?.href).toBe(`${rsHref}/sec_rules/1`)
    expect(got.deny_rules[0]).toMatchObject({ href: `${rsHref}/deny_rules/1`, override: true })
    expect(got.update_type).toBe('create')
    // a rule is edited in place: what the body leaves out keeps its value
    const edited = await s.call('PUT', `/api/v2${rsHref}/deny_rules/1`, {
      override: false,
      ingress_services: [{ port: 2222, proto: 6 }],
    })
    expect(edited.statusCode, edited.body).toBe(204)
    const refused = await s.call('PUT', `/api/v2${rsHref}/sec_rules/1`, {
      ingress_services: [{ port: 99_999, proto: 6 }],
    })
    expect(refused.statusCode).toBe(406)
    const gotEdited = (await s.call('GET', `/api/v2${rsHref}`)).json() as typeof got
    expect(gotEdited.deny_rules).toEqual([
      expect.objectContaining({
        href: `${rsHref}/deny_rules/1`,
        override: false,
        consumers: [{ actors: 'ams' }],
        ingress_services: [{ port: 2222, proto: 6 }],
      }),
    ])
    expect(gotEdited.rules, 'a refused edit changes nothing').toEqual(got.rules)
    const ruleEvents = (await s.call('GET', `${O}/events?event_type=deny_rule.update`)).json() as {
      resource_changes: { changes: unknown }[]
    }[]
    expect(ruleEvents).toHaveLength(1)
    const lonely = await s.call('POST', `${O}/sec_policy`, {
      change_subset: { rule_sets: [{ href: rsHref }] },
    })
    expect(lonely.statusCode).toBe(406)
    expect((lonely.json() as { token: string }[])[0]?.token).toBe('provision_dependency')
    const both = await s.call('POST', `${O}/sec_policy`, {
      change_subset: {
        rule_sets: [{ href: rsHref }],
        ip_lists: [{ href: (list.json() as { href: string }).href }],
      },
    })
    expect(both.statusCode, both.body).toBe(201)
    expect(
      ((await s.call('GET', `${O}/sec_policy/active/rule_sets`)).json() as unknown[]).length,
    ).toBeGreaterThan(0)
    const v = (both.json() as { version: number }).version
    expect(
      ((await s.call('GET', `${O}/sec_policy/${v}/rule_sets`)).json() as { href: string }[])[0]
        ?.href,
    ).toMatch(new RegExp(`^/orgs/1/sec_policy/${v}/rule_sets/`))
    expect(
      (await s.call('PUT', `${O}/sec_policy/active/rule_sets/1`, { name: 'x' })).statusCode,
    ).toBe(406)
    // a label in use cannot be deleted
    expect((await s.call('DELETE', `/api/v2${db}`)).json()).toEqual([
      { token: 'label_in_use', message: expect.stringContaining('in use by') as string },
    ])
  })

  it('pairs by activation code: single use, expiry, and an agent sees only its own data', async () => {
    const p = await s.call('POST', `${O}/pairing_profiles`, {
      name: 'servers',
      enforcement_mode: 'full',
      allowed_uses_per_key: 1,
      key_lifespan: 3600,
    })
    expect(p.statusCode, p.body).toBe(201)
    const key = (
      await s.call('POST', `/api/v2${(p.json() as { href: string }).href}/pairing_key`, {})
    ).json() as { activation_code: string }
    const activate = (code: string, hostname: string) =>
      s.app.inject({
        method: 'POST',
        url: '/agent/v1/activate',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          activation_code: code,
          hostname,
          interfaces: [{ name: 'eth0', address: '198.18.0.77' }],
        }),
      })
    const a = await activate(key.activation_code, 'host-a')
    expect(a.statusCode, a.body).toBe(201)
    expect((await activate(key.activation_code, 'host-b')).json()).toEqual([
      { token: 'activation_code_used_up', message: expect.any(String) as string },
    ])
    expect((await activate('nope', 'host-c')).statusCode).toBe(406)
    const key2 = (
      await s.call('POST', `/api/v2${(p.json() as { href: string }).href}/pairing_key`, {})
    ).json() as { activation_code: string }
    const b = await activate(key2.activation_code, 'host-d')
    const A = a.json() as { agent_id: string; token: string; workload_href: string }
    const B = b.json() as { agent_id: string; token: string }
    const as = (tok: string) => ({ authorization: `Bearer ${tok}` })
    const routes = [
      ['GET', 'policy?wait=0'],
      ['POST', 'status'],
      ['POST', 'events'],
    ] as const
    for (const [method, path] of routes) {
      const own = await s.app.inject({
        method,
        url: `/agent/v1/agents/${A.agent_id}/${path}`,
        headers: { ...as(A.token), 'content-type': 'application/json' },
        payload: method === 'POST' ? (path === 'events' ? '[]' : '{}') : undefined,
      })
      expect(own.statusCode, `${method} ${path}: ${own.body}`).toBeLessThan(400)
      const other = await s.app.inject({
        method,
        url: `/agent/v1/agents/${A.agent_id}/${path}`,
        headers: { ...as(B.token), 'content-type': 'application/json' },
        payload: method === 'POST' ? '{}' : undefined,
      })
      expect(other.statusCode, `${method} ${path} with another agent's credential`).toBe(403)
      const none = await s.app.inject({ method, url: `/agent/v1/agents/${A.agent_id}/${path}` })
      expect(none.statusCode).toBe(401)
      const forged = await s.app.inject({
        method,
        url: `/agent/v1/agents/${A.agent_id}/${path}`,
        headers: { ...as(`${A.agent_id}.not-the-secret`), 'content-type': 'application/json' },
        payload: method === 'POST' ? (path === 'events' ? '[]' : '{}') : undefined,
      })
      expect(forged.statusCode, `${method} ${path} with a wrong secret`).toBe(401)
    }
    const heartbeatOf = async (id: string) =>
      (
        await s.db
          .selectFrom('agents')
          .select(['last_heartbeat_at', 'status'])
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).last_heartbeat_at
    const before = await heartbeatOf(A.agent_id)
    const status = (token: string, body: unknown, agent = A.agent_id) =>
      s.app.inject({
        method: 'POST',
        url: `/agent/v1/agents/${agent}/status`,
        headers: { ...as(token), 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      })
    const forgedReport = await status(`${A.agent_id}.not-the-secret`, {
      applied: { version: 99, hash: 'x' },
    })
    expect(forgedReport.statusCode).toBe(401)
    expect(await heartbeatOf(A.agent_id), 'a refused report writes nothing').toBe(before)
    expect(
      (await status(`${A.agent_id}.not-the-secret`, { applied: 'bad' })).statusCode,
      'a stranger learns it is one, not what its body lacks',
    ).toBe(401)
    expect((await status(A.token, { applied: 'bad' })).statusCode).toBe(406)
    // reports that arrive together are stored together, each credential checked on its own
    const together = await Promise.all([
      status(A.token, { applied: { version: 6, hash: 'h6', mode: 'exclusive' } }),
      status(A.token, { backend: 'nftables' }),
      status(`${A.agent_id}.not-the-secret`, { applied: { version: 7, hash: 'h7' } }),
      status(B.token, { backend: 'iptables-nft' }, B.agent_id),
    ])
    expect(together.map((r) => r.statusCode)).toEqual([204, 204, 401, 204])
    const stored = await s.db
      .selectFrom('agents')
      .select(['id', 'applied_version', 'applied_mode', 'backend', 'health'])
      .where('id', 'in', [A.agent_id, B.agent_id])
      .execute()
    expect(stored.find((r) => r.id === A.agent_id)).toMatchObject({
      applied_version: 6,
      applied_mode: 'exclusive',
      backend: 'nftables',
      health: JSON.stringify({ applied_hash: 'h6' }),
    })
    expect(stored.find((r) => r.id === B.agent_id)).toMatchObject({
      applied_version: null,
      backend: 'iptables-nft',
    })
    const policy = await s.app.inject({
      url: `/agent/v1/agents/${A.agent_id}/policy?wait=5`,
      headers: as(A.token),
    })
    expect(policy.json()).toMatchObject({
      hash: expect.any(String) as string,
      policy: { enforcementMode: 'full', workload: { href: A.workload_href } },
    })
    const w = (await s.call('GET', `/api/v2${A.workload_href}`)).json() as {
      managed: boolean
      agent: { status: { security_policy_sync_state: string } }
    }
    expect(w.managed).toBe(true)
    expect(w.agent.status.security_policy_sync_state).toBe('syncing')
    expect(
      ((await s.call('GET', `${O}/events?event_type=agent.activate`)).json() as unknown[]).length,
    ).toBe(2)

    // an unpair asked for stays pending through the agent's heartbeats, until its goodbye
    const ven = (await s.call('GET', `${O}/vens?hostname=host-d`)).json() as { href: string }[]
    const unpair = await s.call('PUT', `${O}/vens/unpair`, {
      vens: [{ href: ven[0]?.href }],
      firewall_restore: 'saved',
    })
    expect(unpair.statusCode, unpair.body).toBe(204)
    const beat = await s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${B.agent_id}/status`,
      headers: { ...as(B.token), 'content-type': 'application/json' },
      payload: JSON.stringify({ health: { health: 'healthy' } }),
    })
    expect(beat.statusCode).toBe(204)
    const told = await s.app.inject({
      url: `/agent/v1/agents/${B.agent_id}/policy?wait=0`,
      headers: as(B.token),
    })
    expect(told.statusCode).toBe(410)
    expect(told.json()).toEqual({ unpair: { firewall_restore: 'saved' } })
  })

  it('computes again and pushes only the hosts a change reaches', async () => {
    const web = await label('role', 'reach-web')
    const db = await label('role', 'reach-db')
    const other = await label('role', 'reach-other')
    const codeFor = async (l: string) => {
      const p = await s.call('POST', `${O}/pairing_profiles`, {
        name: `reach ${l}`,
        enforcement_mode: 'full',
        labels: [{ href: l }],
      })
      expect(p.statusCode, p.body).toBe(201)
      return (
        (
          await s.call('POST', `/api/v2${(p.json() as { href: string }).href}/pairing_key`, {})
        ).json() as { activation_code: string }
      ).activation_code
    }
    const codes = { web: await codeFor(web), db: await codeFor(db), other: await codeFor(other) }
    let host = 0
    const activate = async (role: keyof typeof codes) => {
      const r = await s.app.inject({
        method: 'POST',
        url: '/agent/v1/activate',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          activation_code: codes[role],
          hostname: `reach-${role}-${++host}`,
          interfaces: [{ name: 'eth0', address: `198.18.7.${host}` }],
        }),
      })
      expect(r.statusCode, r.body).toBe(201)
      return r.json() as { agent_id: string; token: string; workload_href: string }
    }
    const hosts = {
      web: await activate('web'),
      db: await activate('db'),
      other: await activate('other'),
    }
    const policyOf = async (a: { agent_id: string; token: string }, wait = 0) =>
      (
        await s.app.inject({
          url: `/agent/v1/agents/${a.agent_id}/policy?wait=${wait}`,
          headers: { authorization: `Bearer ${a.token}` },
        })
      ).json() as { hash: string; policy: { version: number } }
    const hashes = async () => ({
      web: (await policyOf(hosts.web)).hash,
      db: (await policyOf(hosts.db)).hash,
      other: (await policyOf(hosts.other)).hash,
    })
    const rs = await s.call('POST', `${O}/sec_policy/draft/rule_sets`, {
      name: 'reach',
      scopes: [],
    })
    const rsHref = (rs.json() as { href: string }).href
    const rule = (provider: string, consumer: string, port: number) =>
      s.call('POST', `/api/v2${rsHref}/sec_rules`, {
        providers: [{ label: { href: provider } }],
        consumers: [{ label: { href: consumer } }],
        ingress_services: [{ port, proto: 6 }],
      })
    expect((await rule(db, web, 5432)).statusCode).toBe(201)
    const provision = async () => {
      const r = await s.call('POST', `${O}/sec_policy`, {})
      expect(r.statusCode, r.body).toBe(201)
      return r.json() as { version: number; workloads_affected: number }
    }
    const first = await provision()
    const h1 = await hashes()

    // its first policy comes from the recompute its activation started, which covers every host
    const third = await activate('web')
    expect((await policyOf(third, 5)).hash).toEqual(expect.any(String))
    const h2 = await hashes()
    expect(h2.db, 'a new web host joins the db host peer set').not.toBe(h1.db)
    expect([h2.web, h2.other], 'the other hosts keep their policy').toEqual([h1.web, h1.other])

    const put = await s.call('PUT', `/api/v2${hosts.web.workload_href}`, {
      enforcement_mode: 'selective',
    })
    expect(put.statusCode, put.body).toBe(204)
    const h3 = await hashes()
    expect(h3.web).not.toBe(h2.web)
    expect([h3.db, h3.other], 'an enforcement change moves no peer set').toEqual([h2.db, h2.other])

    expect((await rule(other, other, 22)).statusCode).toBe(201)
    const second = await provision()
    expect(second.workloads_affected, 'only the host the new rule names').toBe(1)
    const h4 = await hashes()
    expect(h4.other).not.toBe(h3.other)
    expect([h4.web, h4.db]).toEqual([h3.web, h3.db])
    expect((await policyOf(hosts.other)).policy.version).toBe(second.version)
    expect((await policyOf(hosts.db)).policy.version, 'the db host was not sent anything').toBe(
      first.version,
    )

    // a web host's address changes: its agent reports it, and the db host's peers follow
    const moved = await s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${hosts.web.agent_id}/status`,
      headers: { authorization: `Bearer ${hosts.web.token}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ interfaces: [{ name: 'eth0', address: '198.18.7.200' }] }),
    })
    expect(moved.statusCode, moved.body).toBe(204)
    const peers = async () =>
      JSON.stringify((await policyOf(hosts.db)).policy as unknown).includes('198.18.7.200/32')
    await expect.poll(peers, { timeout: 5000 }).toBe(true)
    expect((await hashes()).other, 'a host without that peer keeps its policy').toBe(h4.other)
    const events = (
      await s.call('GET', `${O}/events?event_type=workload.update&max_results=1`)
    ).json() as { created_by: unknown; resource_changes: { changes: unknown }[] }[]
    expect(events[0]?.created_by).toMatchObject({ agent: { hostname: 'reach-web-1' } })
    const bad = await s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${hosts.web.agent_id}/status`,
      headers: { authorization: `Bearer ${hosts.web.token}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ interfaces: [{ name: 'eth0', address: 'not an address' }] }),
    })
    expect(bad.statusCode).toBe(406)
    expect(await peers(), 'a refused report changes nothing').toBe(true)
  })
})

describe('rate limit', () => {
  it('answers 429 with Retry-After past the per-minute limit, per API user', async () => {
    const s = await testServer(undefined, 3)
    try {
      const codes = []
      for (let i = 0; i < 4; i++) codes.push((await s.call('GET', `${O}/labels`)).statusCode)
      expect(codes).toEqual([200, 200, 200, 429])
      const r = await s.call('GET', `${O}/labels`)
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0)
      expect(r.json()).toEqual([
        { token: 'too_many_requests', message: expect.stringContaining('retry after') as string },
      ])
    } finally {
      await s.close()
    }
  })
})

describe('operations', () => {
  it('exposes Prometheus metrics to API users only, and an OpenAPI document of the real routes', async () => {
    const s = await testServer()
    try {
      await s.call('GET', `${O}/labels`)
      expect((await s.app.inject({ url: '/metrics' })).statusCode).toBe(401)
      const m = await s.call('GET', '/metrics')
      expect(m.headers['content-type']).toMatch(/^text\/plain/)
      expect(m.body).toMatch(
        /palisade_http_requests_total\{method="GET",route="\/api\/v2\/orgs\/:org\/labels",status="200"\} 1/,
      )
      expect(m.body).toMatch(/palisade_policy_version 0/)
      expect(m.body).toMatch(/palisade_policy_waiters 0/)
      const doc = (await s.app.inject({ url: '/api/v2/openapi.json' })).json<{
        openapi: string
        paths: Record<string, Record<string, unknown>>
      }>()
      expect(doc.openapi).toBe('3.0.3')
      expect(
        Object.keys(doc.paths['/api/v2/orgs/{org}/sec_policy/{pv}/firewall_settings'] ?? {}).sort(),
      ).toEqual(['get', 'put'])
      expect(doc.paths['/agent/v1/agents/{agent}/policy']).toBeDefined()
    } finally {
      await s.close()
    }
  })

  it('flags agents that stop sending heartbeats, once, and takes a goodbye as a goodbye', async () => {
    const s = await testServer()
    try {
      const p = (await s.call('POST', `${O}/pairing_profiles`, { name: 'hb' })).json<{
        href: string
      }>()
      const code = (await s.call('POST', `/api/v2${p.href}/pairing_key`, {})).json<{
        activation_code: string
      }>().activation_code
      const a = (
        await s.app.inject({
          method: 'POST',
          url: '/agent/v1/activate',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ activation_code: code, hostname: 'hb1' }),
        })
      ).json<{ agent_id: string; token: string }>()
      const { checkHeartbeats } = await import('./liveness.js')
      const soon = new Date(Date.now() + 60_000)
      expect(await checkHeartbeats(s.db, soon)).toEqual([])
      const later = new Date(Date.now() + 20 * 60_000)
      expect(await checkHeartbeats(s.db, later)).toEqual([a.agent_id])
      expect(await checkHeartbeats(s.db, later), 'reported once, not on every check').toEqual([])
      const vens = (await s.call('GET', `${O}/vens`)).json<
        { conditions: { type: string }[]; status: string }[]
      >()
      expect(vens[0]?.conditions.map((c) => c.type)).toEqual(['agent.missed_heartbeats'])
      expect(await checkHeartbeats(s.db, new Date(Date.now() + 2 * 3600_000))).toEqual([a.agent_id])
      expect((await s.call('GET', `${O}/vens`)).json<{ status: string }[]>()[0]?.status).toBe(
        'offline',
      )
      const bye = await s.app.inject({
        method: 'POST',
        url: `/agent/v1/agents/${a.agent_id}/goodbye`,
        headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' },
        payload: '{}',
      })
      expect(bye.statusCode).toBe(204)
      expect(
        (await s.call('GET', `${O}/events?event_type=agent.goodbye`)).json<unknown[]>(),
      ).toHaveLength(1)
    } finally {
      await s.close()
    }
  })
})

describe('activation limits', () => {
  it('refuses an expired activation code, and throttles activation attempts per address', async () => {
    const s = await testServer()
    try {
      const p = (
        await s.call('POST', `${O}/pairing_profiles`, { name: 'short', key_lifespan: 1 })
      ).json<{ href: string }>()
      const code = (await s.call('POST', `/api/v2${p.href}/pairing_key`, {})).json<{
        activation_code: string
      }>().activation_code
      await new Promise((r) => setTimeout(r, 1100))
      const activate = (c: string) =>
        s.app.inject({
          method: 'POST',
          url: '/agent/v1/activate',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ activation_code: c, hostname: 'late' }),
        })
      expect((await activate(code)).json()).toEqual([
        { token: 'activation_code_expired', message: expect.stringContaining('expired') as string },
      ])
      const codes = []
      // 20 attempts a minute per address: the expired one above and 19 guesses
      for (let i = 0; i < 19; i++) codes.push((await activate(`guess-${i}`)).statusCode)
      expect(codes.every((c) => c === 406)).toBe(true)
      const throttled = await activate('guess-21')
      expect(throttled.statusCode).toBe(429)
      expect(throttled.headers['retry-after']).toBeDefined()
      expect((await s.call('GET', `${O}/workloads?max_results=0`)).headers['x-total-count']).toBe(
        '0',
      )
    } finally {
      await s.close()
    }
  })
})
