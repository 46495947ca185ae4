/**
 * Response shapes the vendor's clients depend on (issue 12), and the traffic queries they send:
 * product_version, async traffic queries (rules, failures, the list, CSV or JSON downloads),
 * policy_decisions null, label group and FQDN actors, ICMP type and code, a flow both ends
 * reported counted once.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'
import type { FlowRecord } from './traffic/flow-match.js'

const O = '/api/v2/orgs/1'
const T0 = Date.parse('2026-11-27T08:00:00.000Z')
const at = (s: number) => new Date(T0 + s * 1000).toISOString()
type Href = { href: string }
type Query = {
  href: string
  status: string
  result: unknown
  rules: unknown
  flows_count: number
  error_message?: string
}

describe.each(['sqlite', 'postgres'])('API shapes on %s', (dialect) => {
  let s: TestServer
  let pg: TestPostgres | undefined
  let web: { token: string; agent_id: string; workload_href: string }
  let db: { token: string; agent_id: string; workload_href: string }
  let webLabel: string
  beforeAll(async () => {
    if (dialect === 'postgres') pg = await startTestPostgres()
    s = await testServer(pg ? await pg.freshDatabase() : undefined)
    const label = async (value: string) =>
      (await s.call('POST', `${O}/labels`, { key: 'app', value })).json<Href>().href
    webLabel = await label('s-web')
    const dbLabel = await label('s-db')
    const pair = async (hostname: string, address: string, lab: string) => {
      const p = (
        await s.call('POST', `${O}/pairing_profiles`, { name: hostname, labels: [{ href: lab }] })
      ).json<Href>()
      const code = (await s.call('POST', `/api/v2${p.href}/pairing_key`, {})).json<{
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
      return r.json<{ token: string; agent_id: string; workload_href: string }>()
    }
    web = await pair('s-web-1', '198.18.3.10', webLabel)
    db = await pair('s-db-1', '198.18.3.11', dbLabel)
    const flow = (over: Record<string, unknown>) => ({
      uuid: randomUUID(),
      direction: 'inbound',
      src_ip: '198.18.3.10',
      dst_ip: '198.18.3.11',
      port: 5432,
      proto: 6,
      policy_decision: 'allowed',
      rule_href: null,
      num_connections: 4,
      first_seen: at(0),
      last_seen: at(10),
      dropped_downstream: false,
      ...over,
    })
    const upload = async (a: { token: string; agent_id: string }, batch: unknown[]) => {
      const r = await s.app.inject({
        method: 'POST',
        url: `/agent/v1/agents/${a.agent_id}/flows`,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${a.token}` },
        payload: JSON.stringify(batch),
      })
      expect(r.statusCode, r.body).toBe(204)
    }
    // db saw web's 5432 connections come in; web saw them go out: one connection, two reports
    await upload(db, [
      flow({}),
      flow({ port: undefined, proto: 1, icmp_type: 8, icmp_code: 0, num_connections: 2 }),
      flow({ port: undefined, proto: 1, icmp_type: 3, icmp_code: 1, num_connections: 1 }),
      flow({ port: 22, policy_decision: 'blocked' }),
    ])
    await upload(web, [
      flow({ direction: 'outbound', num_connections: 4 }),
      flow({
        direction: 'outbound',
        dst_ip: '127.0.0.1',
        port: 8125,
        proto: 17,
        policy_decision: 'potentially_blocked',
        num_connections: 1,
      }),
    ])
  })
  afterAll(async () => {
    await s?.close()
    await pg?.stop()
  })

  const started = async (body: Record<string, unknown>) => {
    const r = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      start_date: at(-3600),
      end_date: at(3600),
      max_results: 1000,
      ...body,
    })
    expect(r.statusCode, r.body).toBe(201)
    const href = r.json<Href>().href
    await expect
      .poll(async () => (await s.call('GET', `/api/v2${href}`)).json<Query>().status)
      .toBe('completed')
    return (await s.call('GET', `/api/v2${href}`)).json<Query>()
  }
  const flowsOf = async (body: Record<string, unknown>) => {
    const q = await started(body)
    const d = await s.call('GET', `/api/v2${String(q.result)}`, undefined, {
      accept: 'application/json',
    })
    return d.json<FlowRecord[]>()
  }
  const summary = (flows: FlowRecord[]) =>
    flows
      .map(
        (f) =>
          `${f.src.ip}>${f.dst.ip} ${f.service.proto}/${f.service.port ?? ''}${f.icmp_type !== undefined ? ` icmp ${f.icmp_type}/${f.icmp_code}` : ''} x${f.num_connections}`,
      )
      .sort()

  it('gives product_version with an integer build and a dotted version', async () => {
    const v = (await s.app.inject({ url: '/api/v2/product_version' })).json<{
      version: string
      build: unknown
    }>()
    expect(Number.isInteger(v.build)).toBe(true)
    expect(v.version).toMatch(/^\d+\.\d+\.\d+$/)
  })

  it('counts a connection both ends reported once, keeping each end’s report', async () => {
    const q = await started({ policy_decisions: null })
    const flows = (
      await s.call('GET', `/api/v2${String(q.result)}`, undefined, { accept: 'application/json' })
    ).json<FlowRecord[]>()
    expect(q.flows_count).toBe(5)
    const pg5432 = flows.filter((f) => f.service.port === 5432)
    expect(pg5432).toHaveLength(1)
    expect(pg5432[0]).toMatchObject({
      num_connections: 4,
      flow_direction: 'inbound',
      reports: { source: { num_connections: 4 }, destination: { num_connections: 4 } },
    })
  })

  it('answers policy_decisions null (the Go SDK) as every decision', async () => {
    const all = summary(await flowsOf({ policy_decisions: null }))
    expect(all).toEqual(summary(await flowsOf({})))
    expect(all).toHaveLength(5)
    expect(summary(await flowsOf({ policy_decisions: ['blocked'] }))).toEqual([
      '198.18.3.10>198.18.3.11 6/22 x4',
    ])
  })

  it('takes a label group as an actor', async () => {
    const lg = await s.call('POST', `${O}/sec_policy/draft/label_groups`, {
      name: 's-group',
      key: 'app',
      labels: [{ href: webLabel }],
    })
    expect(lg.statusCode, lg.body).toBe(201)
    const href = lg.json<Href>().href
    const from = await flowsOf({ sources: { include: [[{ label_group: { href } }]] } })
    expect(from.every((f) => f.src.ip === '198.18.3.10')).toBe(true)
    expect(from).toHaveLength(5)
    const to = await flowsOf({ destinations: { include: [[{ label_group: { href } }]] } })
    expect(to).toEqual([])
  })

  it('takes a destination named by FQDN, matching the addresses it resolves to', async () => {
    const flows = await flowsOf({ destinations: { include: [[{ fqdn: 'localhost' }]] } })
    expect(summary(flows)).toEqual(['198.18.3.10>127.0.0.1 17/8125 x1'])
    const bad = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      sources: { include: [[{ fqdn: 'localhost' }]] },
    })
    expect(bad.statusCode).toBe(406)
    expect(bad.json<{ message: string }[]>()[0]?.message).toContain('only a destination')
  })

  it('filters ICMP by type and code', async () => {
    const echo = await flowsOf({ services: { include: [{ proto: 1, icmp_type: 8 }] } })
    expect(summary(echo)).toEqual(['198.18.3.10>198.18.3.11 1/ icmp 8/0 x2'])
    const unreachable = await flowsOf({
      services: { include: [{ proto: 1, icmp_type: 3, icmp_code: 1 }] },
    })
    expect(summary(unreachable)).toEqual(['198.18.3.10>198.18.3.11 1/ icmp 3/1 x1'])
    expect(
      await flowsOf({ services: { include: [{ proto: 1, icmp_type: 3, icmp_code: 0 }] } }),
    ).toEqual([])
    const withPort = await s.call('POST', `${O}/traffic_flows/async_queries`, {
      services: { include: [{ proto: 1, icmp_type: 8, port: 80 }] },
    })
    expect(withPort.statusCode).toBe(406)
  })

  it('marks rules "completed" after update_rules, and lists queries with X-Total-Count', async () => {
    const q = await started({})
    expect(q.rules).toBeNull()
    expect(
      (
        await s.call(
          'PUT',
          `/api/v2${q.href}/update_rules?label_based_rules=false&offset=0&limit=200000`,
        )
      ).statusCode,
    ).toBe(204)
    expect((await s.call('GET', `/api/v2${q.href}`)).json<Query>().rules).toBe('completed')
    const list = await s.call('GET', `${O}/traffic_flows/async_queries`)
    const n = list.json<unknown[]>().length
    expect(n).toBeGreaterThan(1)
    expect(list.headers['x-total-count']).toBe(String(n))
    const one = await s.call('GET', `${O}/traffic_flows/async_queries?max_results=1`)
    expect([one.json<unknown[]>().length, one.headers['x-total-count']]).toEqual([1, String(n)])
  })

  it('says why a query failed, in result.message', async () => {
    const q = await started({})
    // the node running it stopped: the query stays "working" past its time
    await s.db
      .updateTable('traffic_queries')
      .set({ status: 'working', updated_at: new Date(Date.now() - 3600_000).toISOString() })
      .where('id', '=', q.href.split('/').pop() ?? '')
      .execute()
    const failed = (await s.call('GET', `/api/v2${q.href}`)).json<Query>()
    expect(failed.status).toBe('failed')
    expect(failed.result).toEqual({ message: expect.stringContaining('run it again') as string })
    expect(failed.error_message).toBe((failed.result as { message: string }).message)
    const download = await s.call('GET', `/api/v2${q.href}/download`)
    expect(download.statusCode).toBe(406)
    expect(download.body).toContain('failed')
  })

  it('downloads CSV for Accept: text/csv or no Accept (the Go SDK), JSON when asked', async () => {
    const q = await started({})
    const url = `/api/v2${String(q.result)}`
    const csvOf = async (headers: Record<string, string>) => {
      const r = await s.app.inject({ url, headers: { authorization: s.auth, ...headers } })
      expect(r.statusCode).toBe(200)
      expect(r.headers['content-type']).toMatch(/^text\/csv/)
      return r.body.trimEnd().split('\r\n')
    }
    const csv = await csvOf({ accept: 'text/csv' })
    expect(csv[0]?.split(',')).toEqual(
      expect.arrayContaining(['src_ip', 'dst_ip', 'port', 'proto', 'icmp_type', 'policy_decision']),
    )
    expect(csv).toHaveLength(1 + 5)
    expect(await csvOf({})).toEqual(csv)
    const json = await s.app.inject({
      url,
      headers: { authorization: s.auth, accept: 'application/json' },
    })
    expect(json.headers['content-type']).toBe('application/json')
    expect(json.json<unknown[]>()).toHaveLength(5)
    const any = await s.app.inject({ url, headers: { authorization: s.auth, accept: '*/*' } })
    expect(any.headers['content-type']).toBe('application/json')
    // the draft decision column, once update_rules has run
    expect((await s.call('PUT', `/api/v2${q.href}/update_rules`)).statusCode).toBe(204)
    const withDraft = await csvOf({ accept: 'text/csv' })
    expect(withDraft[0]).not.toContain('draft_policy_decision')
    const asked = await s.app.inject({
      url: `${url}?include_draft_policy_in_csv=true`,
      headers: { authorization: s.auth, accept: 'text/csv' },
    })
    expect(asked.body.split('\r\n')[0]).toContain('draft_policy_decision')
  })
})
