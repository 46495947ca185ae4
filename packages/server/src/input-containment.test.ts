/**
 * The server contains bad input: every address parsed for real, a bad stored row confined to
 * its workload, agents held to their own addresses and their pairing profile's ranges, and
 * activation codes used no more often than they say; on both stores.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { TestServer } from './test-server.fixture.js'
import { serverOn } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'

interface Agent {
  readonly agent_id: string
  readonly token: string
  readonly workload_href: string
}

describe.each(['sqlite', 'postgres'] as const)('input containment on %s', (dialect) => {
  let s: TestServer
  serverOn(dialect, (server) => (s = server))

  /** A new activation code of a new pairing profile with these fields. */
  const codeOf = async (profile: object = {}) => {
    const p = await s.call('POST', `${O}/pairing_profiles`, {
      name: `pp-${Math.random()}`,
      ...profile,
    })
    expect(p.statusCode, p.body).toBe(201)
    const href = p.json<{ href: string }>().href
    const k = await s.call('POST', `/api/v2${href}/pairing_key`, {})
    return { profile: href, code: k.json<{ activation_code: string }>().activation_code }
  }
  // Each activation from its own source address: the per-address limit is not under test here.
  let sources = 0
  const activate = (code: string, hostname: string, addresses: string[]) =>
    s.app.inject({
      method: 'POST',
      url: '/agent/v1/activate',
      remoteAddress: `198.18.200.${++sources}`,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        activation_code: code,
        hostname,
        interfaces: addresses.map((address, i) => ({ name: `eth${i}`, address })),
      }),
    })
  const paired = async (hostname: string, addresses: string[], profile: object = {}) => {
    const r = await activate((await codeOf(profile)).code, hostname, addresses)
    expect(r.statusCode, r.body).toBe(201)
    return r.json<Agent>()
  }
  const agentCall = (a: Agent, method: 'GET' | 'POST', path: string, body?: unknown) =>
    s.app.inject({
      method,
      url: `/agent/v1/agents/${a.agent_id}/${path}`,
      headers: {
        authorization: `Bearer ${a.token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { payload: JSON.stringify(body) }),
    })
  const workloadCount = async () =>
    (await s.call('GET', `${O}/workloads?max_results=0`)).headers['x-total-count']
  const idOf = (href: string) => href.split('/').pop() ?? ''

  it('refuses an address that does not parse, naming the field, and changes nothing', async () => {
    const { code } = await codeOf({ allowed_uses_per_key: 1 })
    const before = await workloadCount()
    for (const bad of ['1.2.3', '198.18.0.1/32', 'fe80::1%eth0', '198.18.0.1\n'])
      expect((await activate(code, 'bad-host', [bad])).json(), bad).toEqual([
        {
          token: 'input_validation_error',
          message: expect.stringMatching(/^\$\.interfaces\[0\]\.address: .* not an IPv4/) as string,
        },
      ])
    expect(await workloadCount()).toBe(before)
    // the refusals did not use the single-use code up
    const a = await activate(code, 'good-host', ['198.18.1.1', 'FD00:198:18:0::0011'])
    expect(a.statusCode, a.body).toBe(201)
    const agent = a.json<Agent>()
    const w = (await s.call('GET', `/api/v2${agent.workload_href}`)).json<{
      interfaces: { address: string }[]
    }>()
    expect(w.interfaces.map((i) => i.address)).toEqual(['198.18.1.1', 'fd00:198:18::11'])

    const report = await agentCall(agent, 'POST', 'status', {
      interfaces: [{ name: 'eth0', address: '198.18.1.300' }],
    })
    expect(report.statusCode).toBe(406)
    expect(report.body).toContain('$.interfaces[0].address')

    const unmanaged = await s.call('POST', `${O}/workloads`, {
      name: 'typed',
      public_ip: '10.1.2',
      interfaces: [{ name: 'eth0', address: '198.18.1.2', default_gateway_address: '198.18.1' }],
    })
    expect(unmanaged.statusCode).toBe(406)
    expect(unmanaged.json<{ message: string }[]>().map((e) => e.message.split(':')[0])).toEqual([
      '$.public_ip',
      '$.interfaces[0].default_gateway_address',
    ])
    const made = await s.call('POST', `${O}/workloads`, {
      name: 'typed',
      public_ip: '2001:DB8::1',
      interfaces: [{ name: 'eth0', address: '198.18.1.2' }],
    })
    expect(made.statusCode, made.body).toBe(201)
    expect(made.json()).toMatchObject({ public_ip: '2001:db8::1' })

    for (const from_ip of ['198.18.0.0/24/8', ' 198.18.0.0/24', '198.18.0.0/24\n']) {
      const r = await s.call('POST', `${O}/sec_policy/draft/ip_lists`, {
        name: 'bad-range',
        ip_ranges: [{ from_ip }],
      })
      expect(r.statusCode, from_ip).toBe(406)
      expect(r.body).toContain('$.ip_ranges[0]')
    }
    const q = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      query_name: 'bad',
      sources: { include: [[{ ip_address: '198.18.0.0/33' }]], exclude: [] },
      destinations: { include: [[]], exclude: [] },
      services: { include: [], exclude: [] },
      policy_decisions: [],
      start_date: '2025-01-01T00:00:00Z',
      end_date: '2025-01-02T00:00:00Z',
      max_results: 10,
    })
    expect(q.statusCode).toBe(406)
    expect(q.body).toContain('ip_address')
  })
  it('uses a single-use code once under 20 concurrent activations, and a 3-use code 3 times', async () => {
    for (const uses of [1, 3]) {
      const { code } = await codeOf({ allowed_uses_per_key: uses })
      const tries = await Promise.all(
        Array.from({ length: 20 }, (_, i) => activate(code, `race-${uses}-${i}`, [])),
      )
      const codes = tries.map((r) => r.statusCode)
      expect(codes.filter((c) => c === 201)).toHaveLength(uses)
      expect(
        tries
          .filter((r) => r.statusCode !== 201)
          .map((r) => r.json<{ token: string }[]>()[0]?.token),
      ).toEqual(new Array(20 - uses).fill('activation_code_used_up'))
      const hosts = await s.db
        .selectFrom('workloads')
        .select('hostname')
        .where('hostname', 'like', `race-${uses}-%`)
        .execute()
      expect(hosts).toHaveLength(uses)
    }
  })
  it("checks every agent's heartbeat though one agent's stored health or row is malformed", async () => {
    const [odd, broken, plain] = [
      await paired('hb-odd', ['198.18.3.1']),
      await paired('hb-broken', ['198.18.3.2']),
      await paired('hb-plain', ['198.18.3.3']),
    ]
    // What an agent may send is checked first...
    const sent = await agentCall(odd, 'POST', 'status', { health: { conditions: 5 } })
    expect(sent.statusCode).toBe(406)
    expect(sent.body).toContain('$.health.conditions')
    // ...and what reached the store some other way does not stop the sweep.
    await s.db
      .updateTable('agents')
      .set({ health: '{"conditions":{"type":"x"},"health":"healthy"}' })
      .where('id', '=', odd.agent_id)
      .execute()
    await s.db
      .updateTable('workloads')
      .set({ labels: 'not json' })
      .where('id', '=', idOf(broken.workload_href))
      .execute()
    const { checkHeartbeats } = await import('./liveness.js')
    const later = new Date(Date.now() + 20 * 60_000)
    await expect(checkHeartbeats(s.db, later)).rejects.toThrow(
      `could not check agent ${broken.agent_id}`,
    )
    const health = await s.db
      .selectFrom('agents')
      .select(['id', 'health'])
      .where('id', 'in', [odd.agent_id, broken.agent_id, plain.agent_id])
      .execute()
    const conditionsOf = (id: string) =>
      (
        JSON.parse(health.find((h) => h.id === id)?.health ?? '{}') as {
          conditions?: { type: string }[]
        }
      ).conditions?.map((c) => c.type)
    expect(conditionsOf(odd.agent_id)).toEqual(['agent.missed_heartbeats'])
    expect(conditionsOf(plain.agent_id)).toEqual(['agent.missed_heartbeats'])
    expect(conditionsOf(broken.agent_id)).toBeUndefined()
    await s.db
      .updateTable('workloads')
      .set({ labels: '[]' })
      .where('id', '=', idOf(broken.workload_href))
      .execute()
    const vens = await s.call('GET', `${O}/vens?max_results=1000`)
    expect(vens.statusCode, 'a malformed stored health still reads').toBe(200)
  })
  it("keeps flows only for the reporter's own addresses, dated no later than the server's now", async () => {
    const a = await paired('flow-own', ['198.18.4.1'])
    const flow = (src: string, dst: string, first: string, last: string) => ({
      uuid: randomUUID(),
      direction: 'inbound',
      src_ip: src,
      dst_ip: dst,
      port: 4444,
      proto: 6,
      policy_decision: 'allowed',
      rule_href: null,
      num_connections: 1,
      first_seen: first,
      last_seen: last,
      dropped_downstream: false,
    })
    const hourAgo = new Date(Date.now() - 3600_000).toISOString()
    const r = await agentCall(a, 'POST', 'flows', [
      flow('198.18.4.9', '198.18.4.1', hourAgo, hourAgo),
      flow('198.18.4.9', '198.18.4.8', hourAgo, hourAgo),
      flow('198.18.4.9', '198.18.4.1', hourAgo, '2099-01-01T00:00:00Z'),
    ])
    expect(r.statusCode, r.body).toBe(204)
    const stored = await s.db
      .selectFrom('flow_summaries')
      .select(['src_ip', 'dst_ip', 'last_seen'])
      .where('workload_id', '=', idOf(a.workload_href))
      .execute()
    expect(stored.map((f) => f.dst_ip)).toEqual(['198.18.4.1', '198.18.4.1'])
    expect(stored.every((f) => Date.parse(f.last_seen) <= Date.now())).toBe(true)
    const events = (await s.call('GET', `${O}/events?event_type=agent.flows_refused`)).json<
      { notifications: { info: { refused: number; examples: string[] } }[] }[]
    >()
    expect(events.map((e) => e.notifications[0]?.info)).toEqual([
      expect.objectContaining({ refused: 1, examples: ['198.18.4.9 -> 198.18.4.8'] }),
    ])
  })
  it('flags a workload whose stored address does not parse and computes every other host', async () => {
    const role = (await s.call('POST', `${O}/labels`, { key: 'role', value: 'contained' })).json<{
      href: string
    }>().href
    const labelled = { labels: [{ href: role }] }
    const bad = await paired('row-bad', ['198.18.5.1'], labelled)
    const good = await paired('row-good', ['198.18.5.2'], labelled)
    const rs = (
      await s.call('POST', `${O}/sec_policy/draft/rule_sets`, { name: 'contained', scopes: [] })
    ).json<{ href: string }>().href
    const rule = await s.call('POST', `/api/v2${rs}/sec_rules`, {
      providers: [{ label: { href: role } }],
      consumers: [{ label: { href: role } }],
      ingress_services: [{ port: 5432, proto: 6 }],
    })
    expect(rule.statusCode, rule.body).toBe(201)
    const provision = (what: string) =>
      s.call('POST', `${O}/sec_policy`, { update_description: what })
    expect((await provision('contained rule')).statusCode).toBe(201)
    const policyOf = async (a: Agent) =>
      (await agentCall(a, 'GET', 'policy?wait=0')).json<{ policy: { version: number } }>().policy
    const before = await policyOf(bad)
    expect(JSON.stringify(await policyOf(good))).toContain('198.18.5.1/32')

    // What an attacker with the database could write: an address no parser takes.
    await s.db
      .updateTable('workloads')
      .set({ interfaces: JSON.stringify([{ name: 'eth0', address: '1.2.3' }]) })
      .where('id', '=', idOf(bad.workload_href))
      .execute()
    await s.call('POST', `${O}/sec_policy/draft/services`, {
      name: 'contained-svc',
      service_ports: [{ port: 1, proto: 6 }],
    })
    const prov = await provision('with a bad row in the store')
    expect(prov.statusCode, prov.body).toBe(201)
    const version = prov.json<{ href: string }>().href.split('/').pop()
    const goodPolicy = await policyOf(good)
    expect(String(goodPolicy.version)).toBe(version)
    expect(JSON.stringify(goodPolicy)).not.toContain('1.2.3')
    expect(await policyOf(bad), 'the flagged host keeps the policy it had').toEqual(before)
    const w = (await s.call('GET', `/api/v2${bad.workload_href}`)).json<{
      palisade: { policy_error: { reason: string } | null }
      agent: { status: { agent_health: { type: string }[] } }
    }>()
    expect(w.palisade.policy_error?.reason).toContain('"1.2.3" is not an IPv4 or IPv6 address')
    expect(w.agent.status.agent_health.map((c) => c.type)).toContain('workload.policy_error')
    // (counted for this workload: a run during another test's corrupt row may flag that one)
    const flagged = async () =>
      (await s.call('GET', `${O}/events?event_type=workload.policy_error`))
        .json<{ notifications: { info: { workload: string } }[] }[]>()
        .filter((e) => e.notifications[0]?.info.workload === bad.workload_href).length
    expect(await flagged()).toBe(1)
    // flagged once, not on every run
    await s.call('POST', `${O}/sec_policy/draft/services`, {
      name: 'contained-svc-2',
      service_ports: [{ port: 2, proto: 6 }],
    })
    expect((await provision('again')).statusCode).toBe(201)
    expect(await flagged()).toBe(1)

    // the agent reports its real address again: the flag clears and it gets policy again
    const moved = await agentCall(bad, 'POST', 'status', {
      interfaces: [{ name: 'eth0', address: '198.18.5.1' }],
    })
    expect(moved.statusCode).toBe(204)
    await s.call('POST', `${O}/sec_policy/draft/services`, {
      name: 'contained-svc-3',
      service_ports: [{ port: 3, proto: 6 }],
    })
    const third = await provision('row fixed')
    expect(third.statusCode).toBe(201)
    const cleared = (await s.call('GET', `/api/v2${bad.workload_href}`)).json<{
      palisade: { policy_error: unknown }
    }>()
    expect(cleared.palisade.policy_error).toBeNull()
    expect(JSON.stringify(await policyOf(good)), 'a peer again').toContain('198.18.5.1/32')
  })

  it('refuses a provision whose host policies cannot be computed, and commits nothing', async () => {
    const role = (await s.call('POST', `${O}/labels`, { key: 'role', value: 'refused' })).json<{
      href: string
    }>().href
    const a = await paired('refused-host', ['198.18.6.1'], { labels: [{ href: role }] })
    const list = (
      await s.call('POST', `${O}/sec_policy/draft/ip_lists`, {
        name: 'refused-list',
        ip_ranges: [{ from_ip: '198.18.6.0/24' }],
      })
    ).json<{ href: string }>().href
    const rs = (
      await s.call('POST', `${O}/sec_policy/draft/rule_sets`, { name: 'refused', scopes: [] })
    ).json<{ href: string }>().href
    const rule = await s.call('POST', `/api/v2${rs}/sec_rules`, {
      providers: [{ label: { href: role } }],
      consumers: [{ ip_list: { href: list.replace('/draft/', '/draft/') } }],
      ingress_services: [{ port: 22, proto: 6 }],
    })
    expect(rule.statusCode, rule.body).toBe(201)
    // the draft list corrupted in the store
    const id = list.split('/').pop() ?? ''
    const row = await s.db
      .selectFrom('policy_objects')
      .select('draft')
      .where('type', '=', 'ip_lists')
      .where('id', '=', id)
      .executeTakeFirstOrThrow()
    await s.db
      .updateTable('policy_objects')
      .set({ draft: (row.draft ?? '').replace('198.18.6.0/24', '1.2.3') })
      .where('type', '=', 'ip_lists')
      .where('id', '=', id)
      .execute()
    const versions = async () =>
      (await s.db.selectFrom('policy_versions').select('version').execute()).length
    const count = await versions()
    // (its first policy, which the activation's recompute makes in the background)
    const policyBefore = await agentCall(a, 'GET', 'policy?wait=5')
    expect(policyBefore.statusCode).toBe(200)
    const r = await s.call('POST', `${O}/sec_policy`, { update_description: 'cannot compute' })
    expect(r.statusCode).toBe(406)
    expect(r.json()).toEqual([
      {
        token: 'provision_failed',
        message: expect.stringContaining('the host policies could not be computed') as string,
      },
    ])
    expect(await versions(), 'no version committed').toBe(count)
    const pending = (await s.call('GET', `${O}/sec_policy/pending`)).json<{
      ip_lists?: unknown[]
    }>()
    expect(pending.ip_lists?.length).toBeGreaterThan(0)
    expect((await agentCall(a, 'GET', 'policy?wait=0')).body).toBe(policyBefore.body)
    // undo, so later provisions in this store succeed
    await s.call('DELETE', `/api/v2${rs}`)
    await s.call('DELETE', `/api/v2${list}`)
  })
  it('force-deletes a managed workload; its agent is told to unpair when it next calls', async () => {
    const a = await paired('forced', ['198.18.7.1'])
    const url = `/api/v2${a.workload_href}`
    const refused = await s.call('DELETE', url)
    expect(refused.statusCode).toBe(406)
    expect(refused.body).toContain('force=true')
    expect((await s.call('DELETE', `${url}?forced=true`)).json()).toEqual([
      expect.objectContaining({ token: 'unknown_query_parameter' }),
    ])
    // an unpair the agent never acknowledges (a hostile agent sends no goodbye)...
    const ven = (await s.call('GET', `${O}/vens?hostname=forced`)).json<{ href: string }[]>()
    expect(
      (
        await s.call('PUT', `${O}/vens/unpair`, {
          vens: [{ href: ven[0]?.href }],
          firewall_restore: 'saved',
        })
      ).statusCode,
    ).toBe(204)
    // ...does not keep the workload: an admin deletes it by force
    expect((await s.call('DELETE', `${url}?force=true`)).statusCode).toBe(204)
    expect((await s.call('GET', url)).statusCode).toBe(404)
    expect((await s.call('GET', `${O}/vens?hostname=forced`)).json()).toEqual([])
    const told = await agentCall(a, 'GET', 'policy?wait=0')
    expect([told.statusCode, told.json()]).toEqual([410, { unpair: { firewall_restore: 'saved' } }])
    expect(
      (await agentCall(a, 'POST', 'status', { health: { health: 'healthy' } })).statusCode,
    ).toBe(204)
    const stranger = await s.app.inject({
      url: `/agent/v1/agents/${a.agent_id}/policy?wait=0`,
      headers: { authorization: `Bearer ${a.agent_id}.not-the-secret` },
    })
    expect(stranger.statusCode).toBe(401)
    expect((await agentCall(a, 'POST', 'goodbye', {})).statusCode).toBe(204)
    expect((await agentCall(a, 'GET', 'policy?wait=0')).statusCode, 'gone for good').toBe(401)
    const events = (await s.call('GET', `${O}/events?event_type=workload.delete`)).json<
      { notifications: { notification_type: string }[] }[]
    >()
    expect(events.flatMap((e) => e.notifications.map((n) => n.notification_type))).toContain(
      'workload.force_delete',
    )
  })
  it("holds agents to their pairing profile's allowed_ip_ranges", async () => {
    const bad = await s.call('POST', `${O}/pairing_profiles`, {
      name: 'ranges-bad',
      allowed_ip_ranges: ['198.18.8.1/24', 'ten'],
    })
    expect(bad.json<{ message: string }[]>().map((e) => e.message.split(':')[0])).toEqual([
      '$.allowed_ip_ranges[0]',
      '$.allowed_ip_ranges[1]',
    ])
    const { profile, code } = await codeOf({
      allowed_ip_ranges: ['198.18.8.0/24', 'FD00:8::/64'],
      allowed_uses_per_key: 1,
    })
    expect((await s.call('GET', `/api/v2${profile}`)).json()).toMatchObject({
      allowed_ip_ranges: ['198.18.8.0/24', 'fd00:8::/64'],
    })
    const before = await workloadCount()
    const outside = await activate(code, 'ranged', ['198.18.8.1', '203.0.113.5'])
    expect(outside.json()).toEqual([
      {
        token: 'address_not_allowed',
        message: expect.stringMatching(
          /^\$\.interfaces\[1\]\.address: 203\.0\.113\.5 is outside/,
        ) as string,
      },
    ])
    expect(await workloadCount()).toBe(before)
    const ok = await activate(code, 'ranged', ['198.18.8.1', 'fd00:8::1'])
    expect(ok.statusCode, 'the refusal did not use the code').toBe(201)
    const a = ok.json<Agent>()
    const moved = await agentCall(a, 'POST', 'status', {
      interfaces: [
        { name: 'eth0', address: '198.18.8.2' },
        { name: 'eth1', address: '198.18.99.1' },
      ],
    })
    expect(moved.statusCode).toBe(204)
    const w = (await s.call('GET', `/api/v2${a.workload_href}`)).json<{
      interfaces: { address: string }[]
    }>()
    expect(w.interfaces.map((i) => i.address)).toEqual(['198.18.8.2'])
    const events = (await s.call('GET', `${O}/events?event_type=agent.addresses_refused`)).json<
      { notifications: { info: { refused: string[] } }[] }[]
    >()
    expect(events.map((e) => e.notifications[0]?.info.refused)).toEqual([['eth1 198.18.99.1']])
    // the default is any address
    expect(
      (await s.call('GET', `/api/v2${(await codeOf()).profile}`)).json<{
        allowed_ip_ranges: unknown
      }>().allowed_ip_ranges,
    ).toBeNull()
  })
})
