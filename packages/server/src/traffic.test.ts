import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import { pruneFlows } from './stores/flows.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'
import type { FlowRecord } from './traffic/flow-match.js'

const O = '/api/v2/orgs/1'
const T0 = Date.parse('2026-11-26T08:00:00.000Z')
const at = (s: number) => new Date(T0 + s * 1000).toISOString()

describe.each(['sqlite', 'postgres'])('traffic flows on %s', (dialect) => {
  let s: TestServer
  let pg: TestPostgres | undefined
  let web: { token: string; workload_href: string }
  let db: { token: string; workload_href: string }
  let webLabel: string
  let ipList: string
  beforeAll(async () => {
    if (dialect === 'postgres') pg = await startTestPostgres()
    s = await testServer(pg ? await pg.freshDatabase() : undefined)
    const label = async (key: string, value: string) =>
      ((await s.call('POST', `${O}/labels`, { key, value })).json() as { href: string }).href
    webLabel = await label('app', 'web')
    const dbLabel = await label('app', 'db')
    const pair = async (hostname: string, address: string, lab: string) => {
      const p = (
        await s.call('POST', `${O}/pairing_profiles`, {
          name: hostname,
          labels: [{ href: lab }],
          enforcement_mode: 'full',
        })
      ).json() as { href: string }
      const key = (await s.call('POST', `/api/v2${p.href}/pairing_key`, {})).json() as {
        activation_code: string
      }
      const r = await s.app.inject({
        method: 'POST',
        url: '/agent/v1/activate',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          activation_code: key.activation_code,
          hostname,
          interfaces: [{ name: 'eth0', address }],
        }),
      })
      expect(r.statusCode, r.body).toBe(201)
      return r.json() as { token: string; workload_href: string; agent_id: string }
    }
    web = await pair('web-1', '198.18.0.10', webLabel)
    db = await pair('db-1', '198.18.0.11', dbLabel)
    const l = await s.call('POST', `${O}/sec_policy/draft/ip_lists`, {
      name: 'outside',
      ip_ranges: [{ from_ip: '198.19.0.0/16' }],
    })
    expect(l.statusCode, l.body).toBe(201)
    ipList = (l.json() as { href: string }).href
  })
  afterAll(async () => {
    await s?.close()
    await pg?.stop()
  })

  const upload = (token: string, body: unknown) =>
    s.app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${token.split('.')[0]}/flows`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      payload: JSON.stringify(body),
    })
  const flow = (over: Record<string, unknown>) => ({
    uuid: randomUUID(),
    direction: 'inbound',
    src_ip: '198.18.0.10',
    dst_ip: '198.18.0.11',
    port: 5432,
    proto: 6,
    policy_decision: 'allowed',
    rule_href: '/orgs/1/sec_policy/active/rule_sets/1/sec_rules/1',
    num_connections: 3,
    first_seen: at(0),
    last_seen: at(5),
    dropped_downstream: false,
    ...over,
  })
  const query = async (body: Record<string, unknown>) => {
    const r = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      start_date: at(-3600),
      end_date: at(3600),
      max_results: 1000,
      ...body,
    })
    expect(r.statusCode, r.body).toBe(201)
    const href = (r.json() as { href: string }).href
    for (let i = 0; i < 100; i++) {
      const q = (await s.call('GET', `/api/v2${href}`)).json() as {
        status: string
        result: string
        matches_count: number
        flows_count: number
      }
      if (q.status === 'completed') {
        const d = await s.call('GET', `/api/v2${q.result}`, undefined, {
          accept: 'application/json',
        })
        expect(d.statusCode).toBe(200)
        return { status: q, flows: d.json() as FlowRecord[] }
      }
      expect(['queued', 'working']).toContain(q.status)
      await new Promise((res) => setTimeout(res, 20))
    }
    throw new Error('query did not complete in 2 s')
  }

  it('stores uploaded summaries once, even when a batch is sent again', async () => {
    const batch = [
      flow({}),
      flow({ first_seen: at(20), last_seen: at(30), num_connections: 2 }),
      flow({ port: 22, policy_decision: 'blocked', rule_href: null }),
      flow({
        src_ip: '198.19.1.1',
        port: 443,
        policy_decision: 'potentially_blocked',
        rule_href: null,
      }),
    ]
    expect((await upload(db.token, batch)).statusCode).toBe(204)
    expect((await upload(db.token, batch)).statusCode).toBe(204)
    const outbound = [
      flow({
        direction: 'outbound',
        src_ip: '198.18.0.10',
        dst_ip: '198.18.0.11',
        dropped_downstream: true,
        num_connections: 1,
      }),
    ]
    expect((await upload(web.token, outbound)).statusCode).toBe(204)
    const { flows, status } = await query({})
    // both ends reported the 5432 connections: one record, counted once
    expect(status.flows_count).toBe(3)
    const pg5432 = flows.find((f) => f.service.port === 5432)
    expect(pg5432).toMatchObject({
      src: {
        ip: '198.18.0.10',
        workload: {
          href: web.workload_href,
          hostname: 'web-1',
          labels: [{ href: webLabel, key: 'app', value: 'web' }],
        },
      },
      dst: { ip: '198.18.0.11', workload: { href: db.workload_href } },
      service: { port: 5432, proto: 6 },
      num_connections: 5,
      timestamp_range: { first_detected: at(0), last_detected: at(30) },
      policy_decision: 'allowed',
      flow_direction: 'inbound',
      transmission: 'unicast',
      // the source saw a later firewall drop what our policy passed
      dropped_downstream: true,
      reports: {
        source: { policy_decision: 'allowed', dropped_downstream: true, num_connections: 1 },
        destination: { policy_decision: 'allowed', dropped_downstream: false, num_connections: 5 },
      },
    })
    expect(flows.filter((f) => f.flow_direction === 'outbound')).toEqual([])
    // an address outside every workload has no workload
    expect(flows.find((f) => f.src.ip === '198.19.1.1')?.src.workload).toBeUndefined()
  })

  // [case, query body, the (src ip, port, decision) of the flows expected]
  const cases: [string, Record<string, unknown>, string[]][] = [
    ['blocked only', { policy_decisions: ['blocked'] }, ['198.18.0.10 22 blocked']],
    [
      'potentially blocked or blocked',
      { policy_decisions: ['potentially_blocked', 'blocked'] },
      ['198.18.0.10 22 blocked', '198.19.1.1 443 potentially_blocked'],
    ],
    [
      'service 5432 inbound only',
      { services: { include: [{ port: 5432, proto: 6 }] }, sources: { include: [], exclude: [] } },
      ['198.18.0.10 5432 allowed'],
    ],
    [
      'services exclude a range',
      { services: { exclude: [{ port: 1, to_port: 1000 }] } },
      ['198.18.0.10 5432 allowed'],
    ],
    [
      'source IP list, the go SDK shape',
      { sources: { include: [[{ ip_address: { value: '198.19.0.0/16' } }]] } },
      ['198.19.1.1 443 potentially_blocked'],
    ],
    [
      'source IP address, the python SDK shape',
      { sources: { include: [[{ ip_address: '198.19.1.1' }]] } },
      ['198.19.1.1 443 potentially_blocked'],
    ],
    ['time range before every flow', { start_date: at(-7200), end_date: at(-3600) }, []],
  ]
  it.each(cases)('filters: %s', async (_, body, expected) => {
    const { flows } = await query(body)
    expect(flows.map((f) => `${f.src.ip} ${f.service.port} ${f.policy_decision}`).sort()).toEqual(
      expected.sort(),
    )
  })

  it('filters by label, workload and IP list, with exclusions', async () => {
    const byLabel = await query({
      sources: { include: [[{ label: { href: webLabel } }]] },
      destinations: { include: [[{ workload: { href: db.workload_href } }]] },
    })
    expect(
      byLabel.flows.every((f) => f.src.ip === '198.18.0.10' && f.dst.ip === '198.18.0.11'),
    ).toBe(true)
    expect(byLabel.flows).toHaveLength(2)
    const byList = await query({ sources: { include: [[{ ip_list: { href: ipList } }]] } })
    expect(byList.flows.map((f) => f.src.ip)).toEqual(['198.19.1.1'])
    const excluded = await query({
      sources: { include: [], exclude: [{ ip_list: { href: ipList } }] },
    })
    expect(excluded.flows.map((f) => f.src.ip)).not.toContain('198.19.1.1')
    const cut = await query({ max_results: 1 })
    expect([cut.flows.length, cut.status.matches_count, cut.status.flows_count]).toEqual([1, 3, 1])
  })

  it('evaluates the flows against the draft policy (update_rules)', async () => {
    const rs = await s.call('POST', `${O}/sec_policy/draft/rule_sets`, {
      name: 'draft only',
      scopes: [[]],
    })
    expect(rs.statusCode, rs.body).toBe(201)
    const dbLabel = ((await s.call('GET', `${O}/labels?value=db`)).json() as { href: string }[])[0]
      ?.href
    const rule = await s.call('POST', `/api/v2${(rs.json() as { href: string }).href}/sec_rules`, {
      providers: [{ label: { href: dbLabel } }],
      consumers: [{ label: { href: webLabel } }],
      ingress_services: [{ port: 5432, proto: 6 }],
    })
    expect(rule.statusCode, rule.body).toBe(201)
    const r = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      start_date: at(-3600),
      end_date: at(3600),
      destinations: { include: [[{ workload: { href: db.workload_href } }]], exclude: [] },
    })
    const href = (r.json() as { href: string }).href
    await expect
      .poll(
        async () => ((await s.call('GET', `/api/v2${href}`)).json() as { status: string }).status,
      )
      .toBe('completed')
    expect((await s.call('PUT', `/api/v2${href}/update_rules`)).statusCode).toBe(204)
    const q = (await s.call('GET', `/api/v2${href}`)).json() as { rules: unknown; result: string }
    expect(q.rules).toBe('completed')
    const flows = (
      await s.call('GET', `/api/v2${q.result}`, undefined, { accept: 'application/json' })
    ).json() as (FlowRecord & {
      draft_policy_decision: string
    })[]
    const by = (port: number, src: string) =>
      flows.find(
        (f) => f.service.port === port && f.src.ip === src && f.flow_direction === 'inbound',
      )?.draft_policy_decision
    // db enforces fully: the draft rule allows web on 5432, SSH is a failsafe port, the rest
    // stays blocked
    expect(by(5432, '198.18.0.10')).toBe('allowed')
    expect(by(22, '198.18.0.10')).toBe('allowed')
    expect(by(443, '198.19.1.1')).toBe('blocked')
  })

  it('refuses a bad query with every problem named, and stores nothing', async () => {
    const before = ((await s.call('GET', `${O}/traffic_flows/async_queries`)).json() as unknown[])
      .length
    const r = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      start_date: 'yesterday',
      policy_decisions: ['maybe'],
      sources: { include: [[{ fqdn: 'example.com' }]] },
      max_results: 500_000,
      colour: 'red',
    })
    expect(r.statusCode).toBe(406)
    const messages = (r.json() as { message: string }[]).map((i) => i.message).join('\n')
    for (const part of [
      '$.start_date',
      '$.policy_decisions[0]',
      'fqdn',
      '$.max_results',
      '$.colour',
    ])
      expect(messages).toContain(part)
    expect(
      ((await s.call('GET', `${O}/traffic_flows/async_queries`)).json() as unknown[]).length,
    ).toBe(before)
  })

  it('refuses bad summaries from an agent and stores none of the batch', async () => {
    const good = flow({ port: 9999 })
    const r = await upload(web.token, [
      good,
      flow({ src_ip: 'nope', num_connections: 0, policy_decision: 'unknown' }),
    ])
    expect(r.statusCode).toBe(406)
    expect((await query({ services: { include: [{ port: 9999 }] } })).flows).toEqual([])
    expect((await upload('x.y', [good])).statusCode).toBe(401)
  })

  it('answers 404 for an unknown query, and deletes a query', async () => {
    expect(
      (await s.call('GET', `${O}/traffic_flows/async_queries/${randomUUID()}`)).statusCode,
    ).toBe(404)
    const r = await s.call('POST', `${O}/traffic_flows/async_queries`, {})
    const href = (r.json() as { href: string }).href
    expect((await s.call('DELETE', `/api/v2${href}`)).statusCode).toBe(204)
    expect((await s.call('GET', `/api/v2${href}`)).statusCode).toBe(404)
  })

  it('keeps summaries by age and by count', async () => {
    const old = flow({
      first_seen: '2020-01-01T00:00:00.000Z',
      last_seen: '2020-01-01T00:00:01.000Z',
      port: 7000,
    })
    expect((await upload(web.token, [old])).statusCode).toBe(204)
    const count = async () =>
      Number(
        (
          await s.db
            .selectFrom('flow_summaries')
            .select((e) => e.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      )
    const before = await count()
    expect(await pruneFlows(s.db, { maxAgeDays: 30, maxRows: 1_000_000 }, new Date(T0))).toBe(1)
    expect(await count()).toBe(before - 1)
    expect(await pruneFlows(s.db, { maxAgeDays: 30, maxRows: 2 }, new Date(T0))).toBe(before - 3)
    expect(await count()).toBe(2)
  })
})
