/**
 * The routes added for the vendor's clients (issue 12), as illumio-py, illumioapi/workloader and
 * the Terraform provider call them: label types, single rules, VEN updates, unpair, revert and
 * restore, jobs, session login, API keys and service accounts, org settings honoured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashPassword } from './crypto.js'
import { checkHeartbeats } from './liveness.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import { pruneEvents, recordEvent } from './stores/events.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'
const PASSWORD = 'correct horse battery staple'
type Href = { href: string }
type Issue = { token: string; message: string }

describe.each(['sqlite', 'postgres'])('API routes on %s', (dialect) => {
  let s: TestServer
  let pg: TestPostgres | undefined
  let web: Paired
  let db: Paired
  beforeAll(async () => {
    if (dialect === 'postgres') pg = await startTestPostgres()
    s = await testServer(pg ? await pg.freshDatabase() : undefined)
    // The bootstrap password is shown once; give the admin one this test knows.
    await s.db
      .updateTable('users')
      .set({ password_hash: await hashPassword(PASSWORD) })
      .where('username', '=', 'admin')
      .execute()
    web = await pair('rt-web', '198.18.1.10', [await label('role', 'rt-web')])
    db = await pair('rt-db', '198.18.1.11', [await label('role', 'rt-db')])
  })
  afterAll(async () => {
    await s?.close()
    await pg?.stop()
  })

  interface Paired {
    agent_id: string
    token: string
    workload_href: string
  }
  const label = async (key: string, value: string) => {
    const r = await s.call('POST', `${O}/labels`, { key, value })
    expect(r.statusCode, r.body).toBe(201)
    return r.json<Href>().href
  }
  const pair = async (hostname: string, address: string, labels: string[]): Promise<Paired> => {
    const p = await s.call('POST', `${O}/pairing_profiles`, {
      name: hostname,
      labels: labels.map((href) => ({ href })),
      enforcement_mode: 'visibility_only',
    })
    const code = (await s.call('POST', `/api/v2${p.json<Href>().href}/pairing_key`, {})).json<{
      activation_code: string
    }>().activation_code
    const r = await s.app.inject({
      method: 'POST',
      url: '/agent/v1/activate',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        activation_code: code,
        hostname,
        interfaces: [{ name: 'eth0', address }],
      }),
    })
    expect(r.statusCode, r.body).toBe(201)
    return r.json<Paired>()
  }
  const venOf = async (w: Paired) =>
    (await s.call('GET', `/api/v2${w.workload_href}`)).json<{ ven: Href }>().ven.href
  const tokens = (r: { json<T>(): T }) => r.json<Issue[]>().map((i) => i.token)
  const pending = async () =>
    (await s.call('GET', `${O}/sec_policy/pending`)).json<Record<string, Href[]>>()

  it('label types: list, create, read, update, refuse a key change or a used type, delete', async () => {
    const list = await s.call('GET', `${O}/label_dimensions`)
    expect(list.headers['x-total-count']).toBe('4')
    expect(list.json<{ key: string }[]>().map((d) => d.key)).toEqual(
      expect.arrayContaining(['role', 'app', 'env', 'loc']),
    )
    const made = await s.call('POST', `${O}/label_dimensions`, {
      key: 'tier',
      display_name: 'Tier',
      display_info: { background_color: '#112233', sort_ordinal: 5 },
      external_data_set: 'cmdb',
      external_data_reference: 'tier-1',
    })
    expect(made.statusCode, made.body).toBe(201)
    const d = made.json<{ href: string } & Record<string, unknown>>()
    expect(d.href).toMatch(/^\/orgs\/1\/label_dimensions\/[0-9a-f-]{36}$/)
    expect(d).toMatchObject({
      key: 'tier',
      display_name: 'Tier',
      display_info: { initial: 'T', background_color: '#112233', sort_ordinal: 5 },
      usage: { labels: false, label_groups: false },
      external_data_reference: 'tier-1',
      deleted: false,
    })
    const dup = await s.call('POST', `${O}/label_dimensions`, { key: 'tier', display_name: 'x' })
    expect(tokens(dup)).toEqual(['label_dimension_key_exists'])
    expect((await s.call('GET', `${O}/label_dimensions?key=ti`)).json()).toHaveLength(1)
    expect(
      (await s.call('GET', `${O}/label_dimensions?external_data_reference=tier`)).json(),
      'external_data_reference is exact',
    ).toHaveLength(0)
    const put = await s.call('PUT', `/api/v2${d.href}`, {
      display_name: 'Tiers',
      key: 'tier',
      display_info: { initial: 'Ti' },
    })
    expect(put.statusCode, put.body).toBe(204)
    expect((await s.call('GET', `/api/v2${d.href}`)).json()).toMatchObject({
      display_name: 'Tiers',
      display_info: { initial: 'Ti', background_color: '#112233' },
    })
    const rekey = await s.call('PUT', `/api/v2${d.href}`, { key: 'layer' })
    expect(rekey.statusCode).toBe(406)
    expect(rekey.json<Issue[]>()[0]?.message).toContain('$.key')
    const used = await label('tier', 'front')
    expect((await s.call('GET', `/api/v2${d.href}`)).json()).toMatchObject({
      usage: { labels: true },
    })
    const inUse = await s.call('DELETE', `/api/v2${d.href}`)
    expect(tokens(inUse)).toEqual(['label_dimension_in_use'])
    expect(inUse.json<Issue[]>()[0]?.message).toContain(used)
    expect((await s.call('DELETE', `/api/v2${used}`)).statusCode).toBe(204)
    expect((await s.call('DELETE', `/api/v2${d.href}`)).statusCode).toBe(204)
    expect((await s.call('GET', `/api/v2${d.href}`)).statusCode).toBe(404)
    const events = (await s.call('GET', `${O}/events?event_type=label_dimension.delete`)).json<
      unknown[]
    >()
    expect(events).toHaveLength(1)
  })

  it('reads one allow rule and one deny rule by href, in draft and once provisioned', async () => {
    const rs = (
      await s.call('POST', `${O}/sec_policy/draft/rule_sets`, { name: 'rt-single', scopes: [] })
    ).json<Href>().href
    const body = {
      providers: [{ actors: 'ams' }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ port: 8443, proto: 6 }],
      description: 'one rule',
    }
    for (const kind of ['sec_rules', 'deny_rules']) {
      const made = await s.call('POST', `/api/v2${rs}/${kind}`, body)
      expect(made.statusCode, made.body).toBe(201)
      const href = made.json<Href>().href
      expect(href).toMatch(new RegExp(`/sec_policy/draft/rule_sets/\\d+/${kind}/\\d+$`))
      const got = await s.call('GET', `/api/v2${href}`)
      expect(got.statusCode, got.body).toBe(200)
      expect(got.json()).toMatchObject({ href, ...body })
      expect((await s.call('GET', `/api/v2${href}9999`)).statusCode).toBe(404)
    }
    // what is draft is not yet active
    const active = rs.replace('/draft/', '/active/')
    expect((await s.call('GET', `/api/v2${active}/sec_rules/1`)).statusCode).toBe(404)
    expect((await s.call('DELETE', `/api/v2${rs}`)).statusCode).toBe(204)
  })

  it('updates a VEN: name and description kept, status as read taken, a change of status refused', async () => {
    const ven = await venOf(web)
    const put = await s.call('PUT', `/api/v2${ven}`, {
      name: 'front end',
      description: 'serves the web',
      status: 'active',
    })
    expect(put.statusCode, put.body).toBe(204)
    expect((await s.call('GET', `/api/v2${ven}`)).json()).toMatchObject({
      name: 'front end',
      description: 'serves the web',
      status: 'active',
    })
    const suspend = await s.call('PUT', `/api/v2${ven}`, { status: 'suspended', name: 'other' })
    expect(suspend.statusCode).toBe(406)
    expect(suspend.json<Issue[]>()[0]).toMatchObject({
      token: 'unsupported_field_value',
      message: expect.stringContaining('$.status') as string,
    })
    const move = await s.call('PUT', `/api/v2${ven}`, { target_pce_fqdn: 'pce.example.com' })
    expect(tokens(move)).toEqual(['unsupported_field_value'])
    expect((await s.call('GET', `/api/v2${ven}`)).json()).toMatchObject({ name: 'front end' })
    // an empty name clears it: the workload's name shows again
    expect((await s.call('PUT', `/api/v2${ven}`, { name: '' })).statusCode).toBe(204)
    expect((await s.call('GET', `/api/v2${ven}`)).json<{ name: string }>().name).not.toBe(
      'front end',
    )
    expect((await s.call('PUT', `${O}/vens/nope`, { name: 'x' })).statusCode).toBe(404)
  })

  it('shows managed workloads with agent.config, and serves the host policy an agent is sent', async () => {
    const w = (await s.call('GET', `/api/v2${web.workload_href}`)).json<{
      agent: { config: Record<string, unknown> }
    }>()
    expect(w.agent.config).toMatchObject({
      security_policy_update_mode: 'adaptive',
      mode: 'illuminated',
      log_traffic: true,
    })
    const listed = (await s.call('GET', `${O}/workloads?managed=true`)).json<
      { agent: { config: { security_policy_update_mode: string } } }[]
    >()
    expect(listed.map((x) => x.agent.config.security_policy_update_mode)).toEqual([
      'adaptive',
      'adaptive',
    ])
    const policy = await s.app.inject({
      url: `/agent/v1/agents/${web.agent_id}/policy?wait=5`,
      headers: { authorization: `Bearer ${web.token}` },
    })
    const sent = policy.json<{ hash: string }>()
    const stored = await s.call('GET', `/api/v2${web.workload_href}/host_policy`)
    expect(stored.statusCode, stored.body).toBe(200)
    expect(stored.json()).toEqual(sent)
    const unmanaged = (
      await s.call('POST', `${O}/workloads`, {
        name: 'rt-um',
        interfaces: [{ name: 'eth0', address: '198.18.1.99' }],
      })
    ).json<Href>().href
    const none = await s.call('GET', `/api/v2${unmanaged}/host_policy`)
    expect(none.statusCode).toBe(404)
    expect(none.json<Issue[]>()[0]?.message).toContain('only a workload an agent manages')
    expect((await s.call('DELETE', `/api/v2${unmanaged}`)).statusCode).toBe(204)
  })

  it('reverts pending changes: a subset (PUT /sec_policy/delete) or all (DELETE /sec_policy/pending)', async () => {
    const svc = (
      await s.call('POST', `${O}/sec_policy/draft/services`, {
        name: 'rt-svc',
        service_ports: [{ port: 7000, proto: 6 }],
      })
    ).json<Href>().href
    const provisioned = await s.call('POST', `${O}/sec_policy`, {
      update_description: 'rt base',
      change_subset: { services: [{ href: svc }] },
    })
    expect(provisioned.statusCode, provisioned.body).toBe(201)
    const base = provisioned.json<Href>().href
    // two changes pending: an edit and a new list
    expect(
      (await s.call('PUT', `/api/v2${svc}`, { service_ports: [{ port: 7001, proto: 6 }] }))
        .statusCode,
    ).toBe(204)
    const ips = (
      await s.call('POST', `${O}/sec_policy/draft/ip_lists`, {
        name: 'rt-ips',
        ip_ranges: [{ from_ip: '198.18.40.0/24' }],
      })
    ).json<Href>().href
    expect(Object.keys(await pending()).sort()).toEqual(['ip_lists', 'services'])
    const modified = await s.call('GET', `${O}/sec_policy/draft/modified_objects`)
    expect(modified.headers['x-total-count']).toBe('2')
    expect(modified.json()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ href: svc, object_type: 'service', update_type: 'update' }),
        expect.objectContaining({ href: ips, object_type: 'ip_list', update_type: 'create' }),
      ]),
    )
    // the subset: the service goes back to what is active, the new list stays pending
    const none = await s.call('PUT', `${O}/sec_policy/delete`, { change_subset: {} })
    expect(none.statusCode).toBe(406)
    const sub = await s.call('PUT', `${O}/sec_policy/delete`, {
      change_subset: { services: [{ href: svc }] },
    })
    expect(sub.statusCode, sub.body).toBe(204)
    expect((await s.call('GET', `/api/v2${svc}`)).json()).toMatchObject({
      service_ports: [{ port: 7000, proto: 6 }],
    })
    expect(Object.keys(await pending())).toEqual(['ip_lists'])
    // everything: the new list is gone
    expect((await s.call('DELETE', `${O}/sec_policy/pending`)).statusCode).toBe(204)
    expect(await pending()).toEqual({})
    expect((await s.call('GET', `/api/v2${ips}`)).statusCode).toBe(404)
    expect(
      (await s.call('GET', `${O}/events?event_type=sec_policy.revert`)).json<unknown[]>(),
    ).toHaveLength(2)
    // what the base version changed
    expect((await s.call('GET', `/api/v2${base}/modified_objects`)).json()).toEqual([
      expect.objectContaining({ href: svc, object_type: 'service', update_type: 'create' }),
    ])
  })

  it('names what a provision or a revert must also take (draft dependencies)', async () => {
    const svc = (
      await s.call('POST', `${O}/sec_policy/draft/services`, {
        name: 'rt-dep-svc',
        service_ports: [{ port: 7100, proto: 6 }],
      })
    ).json<Href>().href
    const rs = (
      await s.call('POST', `${O}/sec_policy/draft/rule_sets`, { name: 'rt-dep', scopes: [] })
    ).json<Href>().href
    const rule = await s.call('POST', `/api/v2${rs}/sec_rules`, {
      providers: [{ actors: 'ams' }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ href: svc }],
    })
    expect(rule.statusCode, rule.body).toBe(201)
    const deps = await s.call('POST', `${O}/sec_policy/draft/dependencies`, {
      operation: 'commit',
      change_subset: { rule_sets: [{ href: rs }] },
    })
    expect(deps.statusCode, deps.body).toBe(201)
    expect(deps.json()).toEqual([
      { dependency: { service: { href: svc } }, required_by: { rule_set: [{ href: rs }] } },
    ])
    const alone = await s.call('POST', `${O}/sec_policy/draft/dependencies`, {
      operation: 'commit',
      change_subset: { services: [{ href: svc }] },
    })
    expect(alone.json()).toEqual([])
    const bad = await s.call('POST', `${O}/sec_policy/draft/dependencies`, {
      operation: 'merge',
      change_subset: {},
    })
    expect(bad.statusCode).toBe(406)
    expect(
      (
        await s.call('POST', `${O}/sec_policy/active/dependencies`, {
          operation: 'commit',
          change_subset: {},
        })
      ).statusCode,
    ).toBe(406)
    expect((await s.call('DELETE', `${O}/sec_policy/pending`)).statusCode).toBe(204)
  })

  it('restores an earlier version into the draft, and a provision makes it active', async () => {
    const make = async (name: string) =>
      (
        await s.call('POST', `${O}/sec_policy/draft/ip_lists`, {
          name,
          ip_ranges: [{ from_ip: '198.18.50.0/24' }],
        })
      ).json<Href>().href
    const first = await make('rt-restore-1')
    const v1 = (await s.call('POST', `${O}/sec_policy`, { update_description: 'v1' })).json<{
      href: string
    }>().href
    const second = await make('rt-restore-2')
    expect((await s.call('DELETE', `/api/v2${first}`)).statusCode).toBe(204)
    const v2 = await s.call('POST', `${O}/sec_policy`, { update_description: 'v2' })
    expect(v2.statusCode, v2.body).toBe(201)
    const restored = await s.call('POST', `/api/v2${v1}/restore`, {})
    expect(restored.statusCode, restored.body).toBe(201)
    const body = restored.json<{ restored_version: number; pending: { update_type: string }[] }>()
    expect(body.restored_version).toBe(Number(v1.split('/').pop()))
    expect(body.pending.map((p) => p.update_type).sort()).toEqual(['create', 'delete'])
    expect((await s.call('GET', `/api/v2${first}`)).statusCode).toBe(200)
    expect((await s.call('GET', `/api/v2${second}`)).json()).toMatchObject({
      update_type: 'delete',
    })
    expect((await s.call('POST', `${O}/sec_policy`, { update_description: 'v3' })).statusCode).toBe(
      201,
    )
    const activeNames = (
      await s.call('GET', `${O}/sec_policy/active/ip_lists?name=rt-restore`)
    ).json<{ name: string }[]>()
    expect(activeNames.map((l) => l.name)).toEqual(['rt-restore-1'])
    const again = await s.call('POST', `/api/v2${v1}/restore`, {})
    expect(tokens(again)).toEqual(['nothing_to_restore'])
    expect((await s.call('POST', `/api/v2${v1}/restore`, { force: true })).statusCode).toBe(406)
  })

  it('leaves nothing pending when a change is made and undone (no phantom pending)', async () => {
    expect(await pending()).toEqual({})
    const fw = `${O}/sec_policy/draft/firewall_settings`
    const before = (await s.call('GET', fw)).json<{ firewall_coexistence: unknown[] }>()
    const scope = await label('env', 'rt-phantom')
    const added = await s.call('PUT', fw, {
      firewall_coexistence: [
        ...before.firewall_coexistence,
        { scope: [{ href: scope }], illumio_primary: true, workload_mode: 'enforced' },
      ],
    })
    expect(added.statusCode, added.body).toBe(204)
    expect(Object.keys(await pending())).toEqual(['firewall_settings'])
    const removed = await s.call('PUT', fw, {
      firewall_coexistence: before.firewall_coexistence,
    })
    expect(removed.statusCode, removed.body).toBe(204)
    expect(await pending()).toEqual({})
    expect((await s.call('GET', `${O}/sec_policy/draft/modified_objects`)).json()).toEqual([])
  })

  it('lists jobs, filters them by type, deletes one', async () => {
    const started = await s.call('GET', `${O}/labels`, undefined, { prefer: 'respond-async' })
    expect(started.statusCode).toBe(202)
    const href = String(started.headers.location)
    const jobs = await s.call('GET', `${O}/jobs`)
    expect(jobs.statusCode).toBe(200)
    expect(Number(jobs.headers['x-total-count'])).toBeGreaterThanOrEqual(1)
    const mine = jobs.json<{ href: string; status: string; result: Href }[]>()
    expect(mine.find((j) => j.href === href)).toMatchObject({
      status: 'done',
      result: { href: expect.stringMatching(/^\/orgs\/1\/datafiles\//) as string },
    })
    const type = mine.find((j) => j.href === href) as unknown as { job_type: string }
    expect(
      (await s.call('GET', `${O}/jobs?job_type=${encodeURIComponent(type.job_type)}`)).json(),
    ).toEqual(expect.arrayContaining([expect.objectContaining({ href })]))
    expect((await s.call('GET', `${O}/jobs?job_type=no_such_type`)).json()).toEqual([])
    expect((await s.call('DELETE', `/api/v2${href}`)).statusCode).toBe(204)
    expect((await s.call('GET', `/api/v2${href}`)).statusCode).toBe(404)
  })

  it('signs in as illumio-py and illumioapi do: authenticate, users/login, Basic session credentials, logout', async () => {
    const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`
    const wrong = await s.app.inject({
      method: 'POST',
      url: '/api/v2/login_users/authenticate?pce_fqdn=pce.example.com',
      headers: { authorization: basic('admin', 'nope') },
    })
    expect(tokens(wrong)).toEqual(['invalid_credentials'])
    const auth = await s.app.inject({
      method: 'POST',
      url: '/api/v2/login_users/authenticate?pce_fqdn=pce.example.com',
      headers: { authorization: basic('admin', PASSWORD) },
    })
    expect(auth.statusCode, auth.body).toBe(201)
    const { auth_token } = auth.json<{ auth_token: string }>()
    const login = await s.app.inject({
      url: '/api/v2/users/login',
      headers: { authorization: `Token token=${auth_token}` },
    })
    expect(login.statusCode, login.body).toBe(200)
    const session = login.json<{
      href: string
      auth_username: string
      session_token: string
      inactivity_expiration_minutes: number
      orgs: { org_id: number }[]
    }>()
    expect(session).toMatchObject({
      auth_username: expect.stringMatching(/^user_\d+$/) as string,
      inactivity_expiration_minutes: 10,
      orgs: [{ org_id: 1 }],
    })
    expect(session.session_token.length).toBeGreaterThan(20)
    // the auth token is used once
    const replay = await s.app.inject({
      url: '/api/v2/users/login',
      headers: { authorization: `Token token=${auth_token}` },
    })
    expect(tokens(replay)).toEqual(['invalid_auth_token'])
    const asSession = basic(session.auth_username, session.session_token)
    const labels = await s.app.inject({ url: `${O}/labels`, headers: { authorization: asSession } })
    expect(labels.statusCode).toBe(200)
    // illumioapi's LoginAPIKey: POST …/api/v2//users/1/api_keys (a double slash)
    const key = await s.app.inject({
      method: 'POST',
      url: `/api/v2/${session.href}/api_keys`,
      headers: { authorization: asSession, 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'workloader', description: 'created by workloader' }),
    })
    expect(key.statusCode, key.body).toBe(201)
    expect(key.json()).toMatchObject({ description: 'created by workloader' })
    const id = session.href.split('/').pop()
    const out = await s.app.inject({
      method: 'PUT',
      url: `/api/v2/users/${id}/logout`,
      headers: { authorization: asSession },
    })
    expect(out.statusCode).toBe(204)
    const after = await s.app.inject({ url: `${O}/labels`, headers: { authorization: asSession } })
    expect(after.statusCode).toBe(401)
    // the API key made in the session outlives it
    const k = key.json<{ auth_username: string; secret: string }>()
    const byKey = await s.app.inject({
      url: `${O}/labels`,
      headers: { authorization: basic(k.auth_username, k.secret) },
    })
    expect(byKey.statusCode).toBe(200)
    const users = await s.call('GET', '/api/v2/users')
    expect(users.headers['x-total-count']).toBe('1')
    expect(users.json<{ username: string; login_count: number }[]>()[0]).toMatchObject({
      username: 'admin',
      login_count: 1,
    })
    const events = (await s.call('GET', `${O}/events?event_type=user.login`)).json<unknown[]>()
    expect(events).toHaveLength(1)
    const otp = await s.app.inject({
      method: 'POST',
      url: '/api/v2/login_users/authenticate?one_time_password=123456',
      headers: { authorization: basic('admin', PASSWORD) },
    })
    expect(tokens(otp)).toEqual(['two_factor_not_configured'])
  })

  it('lists the org API keys and manages service accounts with their own keys', async () => {
    const made = await s.call('POST', `${O}/service_accounts`, {
      name: 'rt-bot',
      description: 'terraform',
      permissions: [{ role: { href: '/orgs/1/roles/owner' }, scope: [] }],
      api_key: { expires_in_seconds: 3600 },
    })
    expect(made.statusCode, made.body).toBe(201)
    const acct = made.json<{
      href: string
      name: string
      api_key: { auth_username: string; secret: string }
    }>()
    expect(acct.href).toMatch(/^\/orgs\/1\/service_accounts\/[0-9a-f-]{36}$/)
    const asBot = `Basic ${Buffer.from(`${acct.api_key.auth_username}:${acct.api_key.secret}`).toString('base64')}`
    expect(
      (await s.app.inject({ url: `${O}/labels`, headers: { authorization: asBot } })).statusCode,
    ).toBe(200)
    const narrow = await s.call('POST', `${O}/service_accounts`, {
      name: 'rt-narrow',
      permissions: [{ role: { href: '/orgs/1/roles/ruleset_manager' }, scope: [] }],
      api_key: {},
    })
    expect(tokens(narrow)).toEqual(['not_supported'])
    const put = await s.call('PUT', `/api/v2${acct.href}`, { description: 'terraform ci' })
    expect(put.statusCode, put.body).toBe(204)
    expect((await s.call('GET', `/api/v2${acct.href}`)).json()).toMatchObject({
      name: 'rt-bot',
      description: 'terraform ci',
    })
    expect((await s.call('GET', `${O}/service_accounts?name=rt-b`)).json()).toHaveLength(1)
    const keys = await s.call('GET', `${O}/api_keys`)
    expect(Number(keys.headers['x-total-count'])).toBeGreaterThanOrEqual(2)
    const bots = (await s.call('GET', `${O}/api_keys?type=service_account`)).json<
      { href: string; account: { type: string } }[]
    >()
    expect(bots).toHaveLength(1)
    expect(bots[0]?.account.type).toBe('service_account')
    const second = await s.call('POST', `/api/v2${acct.href}/api_keys`, {})
    expect(second.statusCode, second.body).toBe(201)
    expect((await s.call('GET', `${O}/api_keys?type=service_account`)).json()).toHaveLength(2)
    // an org admin deletes a key by its org href: the key stops working
    const orgHref = bots[0]?.href ?? ''
    expect((await s.call('DELETE', `/api/v2${orgHref}`)).statusCode).toBe(204)
    expect(
      (await s.app.inject({ url: `${O}/labels`, headers: { authorization: asBot } })).statusCode,
    ).toBe(401)
    expect((await s.call('DELETE', `/api/v2${acct.href}`)).statusCode).toBe(204)
    expect((await s.call('GET', `${O}/api_keys?type=service_account`)).json()).toEqual([])
    expect((await s.call('GET', `/api/v2${acct.href}`)).statusCode).toBe(404)
  })

  it('applies the event settings: retention prunes older events, the minimum severity drops milder ones', async () => {
    const put = await s.call('PUT', `${O}/settings/events`, {
      audit_event_retention_seconds: 86_400,
    })
    expect(put.statusCode, put.body).toBe(204)
    expect((await s.call('GET', `${O}/settings/events`)).json()).toEqual({
      audit_event_retention_seconds: 86_400,
      audit_event_min_severity: 'informational',
      format: 'JSON',
    })
    const count = async () =>
      Number((await s.call('GET', `${O}/events?max_results=0`)).headers['x-total-count'])
    const all = await count()
    // two days on, every event is past one day's retention
    expect(await pruneEvents(s.db, Date.now() + 2 * 86_400_000)).toBe(all)
    expect(await count()).toBe(0)
    expect(
      (await s.call('PUT', `${O}/settings/events`, { audit_event_retention_seconds: 60 }))
        .statusCode,
    ).toBe(406)
    // the minimum severity: warnings kept, informational dropped
    expect(
      (await s.call('PUT', `${O}/settings/events`, { audit_event_min_severity: 'warning' }))
        .statusCode,
    ).toBe(204)
    await label('loc', 'rt-quiet')
    expect(
      (await s.call('GET', `${O}/events?event_type=label.create`)).json(),
      'an informational event is not recorded',
    ).toEqual([])
    expect(
      (await s.call('PUT', `${O}/settings/events`, { audit_event_min_severity: 'informational' }))
        .statusCode,
    ).toBe(204)
  })

  it('pages events 100 at a time by default, at most 10,000', async () => {
    await s.db.transaction().execute(async (tx) => {
      for (let i = 0; i < 120; i++)
        await recordEvent(tx, 1, { event_type: 'rt.paging', created_by: { system: {} } })
    })
    const page = await s.call('GET', `${O}/events?event_type=rt.paging`)
    expect(page.json<unknown[]>()).toHaveLength(100)
    expect(page.headers['x-total-count']).toBe('120')
    expect(
      (await s.call('GET', `${O}/events?event_type=rt.paging&max_results=10000`)).json(),
    ).toHaveLength(120)
    const over = await s.call('GET', `${O}/events?max_results=10001`)
    expect(over.statusCode).toBe(406)
    expect(over.json<Issue[]>()[0]?.message).toMatch(/max_results.*Prefer: respond-async/s)
  })

  it('unpairs by the legacy workloads route, firewall_restore "disable" as an open firewall', async () => {
    const unmanaged = (
      await s.call('POST', `${O}/workloads`, {
        name: 'rt-um2',
        interfaces: [{ name: 'eth0', address: '198.18.1.98' }],
      })
    ).json<Href>().href
    const refused = await s.call('PUT', `${O}/workloads/unpair`, {
      workloads: [{ href: unmanaged }],
      ip_table_restore: 'disable',
    })
    expect(tokens(refused)).toEqual(['workload_not_managed'])
    const bad = await s.call('PUT', `${O}/workloads/unpair`, {
      workloads: [{ href: db.workload_href }],
      ip_table_restore: 'wide_open',
    })
    expect(bad.statusCode).toBe(406)
    const told = () =>
      s.app.inject({
        url: `/agent/v1/agents/${db.agent_id}/policy?wait=0`,
        headers: { authorization: `Bearer ${db.token}` },
      })
    expect((await told()).statusCode, 'nothing asked yet').not.toBe(410)
    const ok = await s.call('PUT', `${O}/workloads/unpair`, {
      workloads: [{ href: db.workload_href }],
      ip_table_restore: 'disable',
    })
    expect(ok.statusCode, ok.body).toBe(204)
    const r = await told()
    expect(r.statusCode).toBe(410)
    expect(r.json()).toEqual({ unpair: { firewall_restore: 'open' } })
    // the current route takes "disable" too
    const v = await s.call('PUT', `${O}/vens/unpair`, {
      vens: [{ href: await venOf(web) }],
      firewall_restore: 'disable',
    })
    expect(v.statusCode, v.body).toBe(204)
  })

  it('honours PUT /settings/workloads in the liveness sweep (run last: it moves the clock)', async () => {
    const late = await pair('rt-late', '198.18.1.12', [])
    const put = await s.call('PUT', `${O}/settings/workloads`, {
      workload_disconnected_timeout_seconds: [{ scope: [], value: 7200, ven_type: null }],
      workload_disconnected_notification_seconds: [{ scope: [], warning: 1800, ven_type: null }],
    })
    expect(put.statusCode, put.body).toBe(204)
    expect((await s.call('GET', `${O}/settings/workloads`)).json()).toMatchObject({
      workload_disconnected_timeout_seconds: [{ scope: [], value: 7200 }],
      workload_disconnected_notification_seconds: [{ scope: [], warning: 1800 }],
    })
    const statusOf = async () =>
      (await s.call('GET', `${O}/vens?hostname=rt-late`)).json<
        { status: string; conditions: { type: string }[] }[]
      >()[0]
    const at = (minutes: number) => new Date(Date.now() + minutes * 60_000)
    // the defaults would warn after 15 minutes and mark offline after an hour
    expect(await checkHeartbeats(s.db, at(20))).not.toContain(late.agent_id)
    expect(await checkHeartbeats(s.db, at(40))).toContain(late.agent_id)
    expect(await statusOf()).toMatchObject({
      status: 'active',
      conditions: [{ type: 'agent.missed_heartbeats' }],
    })
    expect(await checkHeartbeats(s.db, at(90))).not.toContain(late.agent_id)
    expect(await checkHeartbeats(s.db, at(125))).toContain(late.agent_id)
    expect((await statusOf())?.status).toBe('offline')
    const tooShort = await s.call('PUT', `${O}/settings/workloads`, {
      workload_disconnected_timeout_seconds: [{ scope: [], value: 10 }],
    })
    expect(tooShort.statusCode).toBe(406)
  })
})
