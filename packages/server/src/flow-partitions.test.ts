import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Kysely, Migrator, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrationProvider } from './db/migrations.js'
import { openDb } from './db/open.js'
import type { Database } from './db/schema.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import { prepareFlowPartitions } from './stores/flow-partitions.js'
import { pruneFlows } from './stores/flows.js'
import type { TestServer } from './test-server.fixture.js'
import { serverOn } from './test-server.fixture.js'
import type { FlowRecord } from './traffic/flow-match.js'

const O = '/api/v2/orgs/1'

/** An agent paired with one label, and calls to upload its flows and to query traffic. */
function trafficOf(s: () => TestServer) {
  const pair = async (hostname: string, address: string, value: string) => {
    const label = (
      (await s().call('POST', `${O}/labels`, { key: 'app', value })).json() as { href: string }
    ).href
    const p = (
      await s().call('POST', `${O}/pairing_profiles`, { name: hostname, labels: [{ href: label }] })
    ).json() as { href: string }
    const key = (await s().call('POST', `/api/v2${p.href}/pairing_key`, {})).json() as {
      activation_code: string
    }
    const r = await s().app.inject({
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
    return { ...(r.json() as { token: string }), label }
  }
  const upload = async (token: string, flows: Record<string, unknown>[]) => {
    const r = await s().app.inject({
      method: 'POST',
      url: `/agent/v1/agents/${token.split('.')[0]}/flows`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      payload: JSON.stringify(flows),
    })
    expect(r.statusCode, r.body).toBe(204)
  }
  const query = async (body: Record<string, unknown>) => {
    const r = await s().call('POST', `${O}/traffic_flows/async_queries`, {
      max_results: 1000,
      ...body,
    })
    expect(r.statusCode, r.body).toBe(201)
    const href = (r.json() as { href: string }).href
    for (let i = 0; i < 200; i++) {
      const q = (await s().call('GET', `/api/v2${href}`)).json() as {
        status: string
        result: string
      }
      if (q.status === 'completed')
        return (
          await s().call('GET', `/api/v2${q.result}`, undefined, { accept: 'application/json' })
        ).json() as FlowRecord[]
      expect(['queued', 'working']).toContain(q.status)
      await new Promise((res) => setTimeout(res, 20))
    }
    throw new Error('query did not complete in 4 s')
  }
  return { pair, upload, query }
}

const flow = (port: number, first: string, last: string, n = 1, src = '198.18.3.1') => ({
  uuid: randomUUID(),
  direction: 'inbound',
  src_ip: src,
  dst_ip: '198.18.3.2',
  port,
  proto: 6,
  policy_decision: 'allowed',
  rule_href: null,
  num_connections: n,
  first_seen: first,
  last_seen: last,
  dropped_downstream: false,
})

describe.each(['sqlite', 'postgres'] as const)('flows over days on %s', (dialect) => {
  let s: TestServer
  serverOn(dialect, (x) => (s = x))
  const t = trafficOf(() => s)

  it('finds a flow that spans midnight from either day, and sums a flow across days', async () => {
    const a = await t.pair('days-src', '198.18.3.1', 'days-a')
    const b = await t.pair('days-dst', '198.18.3.2', 'days-b')
    await t.upload(b.token, [
      flow(8001, '2026-11-20T23:59:50.000Z', '2026-11-21T00:00:10.000Z', 2),
      flow(8002, '2026-11-18T10:00:00.000Z', '2026-11-18T10:05:00.000Z', 1),
      flow(8002, '2026-11-19T10:00:00.000Z', '2026-11-19T10:05:00.000Z', 2),
      flow(8002, '2026-11-20T10:00:00.000Z', '2026-11-20T10:05:00.000Z', 4),
    ])
    const labels = {
      sources: { include: [[{ label: { href: a.label } }]], exclude: [] },
      destinations: { include: [[{ label: { href: b.label } }]], exclude: [] },
    }
    const byPort = (records: FlowRecord[], port: number) =>
      records.filter((r) => r.service.port === port)
    const before = await t.query({
      ...labels,
      start_date: '2026-11-20T00:00:00.000Z',
      end_date: '2026-11-20T23:59:59.999Z',
    })
    expect(byPort(before, 8001).map((r) => r.num_connections)).toEqual([2])
    const after = await t.query({
      ...labels,
      start_date: '2026-11-21T00:00:00.000Z',
      end_date: '2026-11-21T12:00:00.000Z',
    })
    expect(byPort(after, 8001).map((r) => r.num_connections)).toEqual([2])
    expect(byPort(after, 8002)).toEqual([])
    const all = await t.query({
      ...labels,
      start_date: '2026-11-18T00:00:00.000Z',
      end_date: '2026-11-21T12:00:00.000Z',
    })
    expect(
      byPort(all, 8002).map((r) => [r.num_connections, r.timestamp_range.first_detected]),
    ).toEqual([[7, '2026-11-18T10:00:00.000Z']])
    // The labels bound the ends: swapped, nothing matches.
    const swapped = await t.query({
      sources: labels.destinations,
      destinations: labels.sources,
      start_date: '2026-11-18T00:00:00.000Z',
      end_date: '2026-11-21T12:00:00.000Z',
    })
    expect(swapped.filter((r) => r.service.port === 8001 || r.service.port === 8002)).toEqual([])
  })
})

describe('flow partitions on postgres', () => {
  let s: TestServer
  serverOn('postgres', (x) => (s = x))
  const t = trafficOf(() => s)
  const partitionsOf = async () =>
    (
      await sql<{ name: string }>`select c.relname as name from pg_inherits i
        join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'flow_summaries'::regclass order by 1`.execute(s.db)
    ).rows.map((r) => r.name)
  const whereStored = async (port: number) =>
    (
      await sql<{ partition: string }>`select tableoid::regclass::text as partition
        from flow_summaries where port = ${port}`.execute(s.db)
    ).rows.map((r) => r.partition)

  it('makes the partitions of today and the next two days ahead of time', async () => {
    await prepareFlowPartitions(s.db, new Date('2027-12-30T18:00:00.000Z'))
    expect(await partitionsOf()).toEqual(
      expect.arrayContaining([
        'flow_summaries_d20271230',
        'flow_summaries_d20271231',
        'flow_summaries_d20280101',
      ]),
    )
    expect(await partitionsOf()).not.toContain('flow_summaries_d20280102')
  })

  it('stores a flow in the day of its last connection, making that day when missing', async () => {
    const a = await t.pair('part-src', '198.18.3.5', 'part-a')
    expect(await partitionsOf()).not.toContain('flow_summaries_d20261001')
    await t.upload(a.token, [
      flow(8101, '2026-09-30T23:59:00.000Z', '2026-10-01T00:01:00.000Z', 1, '198.18.3.5'),
      flow(8102, '2026-10-01T23:59:59.000Z', '2026-10-01T23:59:59.999Z', 1, '198.18.3.5'),
    ])
    expect(await whereStored(8101)).toEqual(['flow_summaries_d20261001'])
    expect(await whereStored(8102)).toEqual(['flow_summaries_d20261001'])
    expect(await partitionsOf()).not.toContain('flow_summaries_d20260930')
  })

  it('drops the days past retention whole, and keeps the day the limit falls in', async () => {
    const a = await t.pair('old-src', '198.18.3.6', 'old-a')
    await t.upload(a.token, [
      flow(8201, '2026-08-01T10:00:00.000Z', '2026-08-01T10:00:01.000Z', 1, '198.18.3.6'),
      flow(8202, '2026-08-01T11:00:00.000Z', '2026-08-01T11:00:01.000Z', 1, '198.18.3.6'),
      flow(8203, '2026-08-02T01:00:00.000Z', '2026-08-02T01:00:01.000Z', 1, '198.18.3.6'),
      flow(8204, '2026-08-03T10:00:00.000Z', '2026-08-03T10:00:01.000Z', 1, '198.18.3.6'),
    ])
    // 30 days before 2026-09-01T12:00 is 2026-08-02T12:00: August 1st is wholly older.
    const now = new Date('2026-09-01T12:00:00.000Z')
    expect(await pruneFlows(s.db, { maxAgeDays: 30, maxRows: 1_000_000 }, now)).toBe(2)
    expect(await partitionsOf()).not.toContain('flow_summaries_d20260801')
    expect(await whereStored(8201)).toEqual([])
    // 01:00 on the 2nd is older than the limit, but its day is kept until the whole day is.
    expect(await whereStored(8203)).toEqual(['flow_summaries_d20260802'])
    expect(await whereStored(8204)).toEqual(['flow_summaries_d20260803'])
    expect(await pruneFlows(s.db, { maxAgeDays: 30, maxRows: 1_000_000 }, now)).toBe(0)
  })
})

describe('flow retention by count on postgres', () => {
  let s: TestServer
  serverOn('postgres', (x) => (s = x))
  const t = trafficOf(() => s)

  it('drops the oldest days whole, and trims only the day the limit falls in', async () => {
    const a = await t.pair('count-src', '198.18.3.7', 'count-a')
    const on = (port: number, day: string, hour: number) =>
      flow(port, `${day}T0${hour}:00:00.000Z`, `${day}T0${hour}:00:01.000Z`, 1, '198.18.3.7')
    await t.upload(a.token, [
      on(8301, '2026-07-01', 1),
      on(8302, '2026-07-01', 2),
      on(8303, '2026-07-02', 1),
      on(8304, '2026-07-02', 2),
      on(8305, '2026-07-03', 1),
      on(8306, '2026-07-03', 2),
    ])
    const now = new Date('2026-07-04T00:00:00.000Z')
    expect(await pruneFlows(s.db, { maxAgeDays: 30, maxRows: 3 }, now)).toBe(3)
    const left = await sql<{ port: number; partition: string }>`select port,
      tableoid::regclass::text as partition from flow_summaries order by port`.execute(s.db)
    expect(left.rows).toEqual([
      { port: 8304, partition: 'flow_summaries_d20260702' },
      { port: 8305, partition: 'flow_summaries_d20260703' },
      { port: 8306, partition: 'flow_summaries_d20260703' },
    ])
    const days = await sql<{ n: string }>`select count(*) as n from pg_class
      where relname = 'flow_summaries_d20260701'`.execute(s.db)
    expect(Number(days.rows[0]?.n)).toBe(0)
  })
})

describe('migration 0010 on a postgres store with flows', () => {
  let pgServer: TestPostgres
  let url: string
  beforeAll(async () => {
    pgServer = await startTestPostgres()
    url = await pgServer.freshDatabase()
  })
  afterAll(() => pgServer.stop())

  it('moves the stored summaries into day partitions, ids and all', async () => {
    const db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }),
    })
    const migrator = new Migrator({ db, provider: migrationProvider('postgres') })
    const to9 = await migrator.migrateTo('0009_agent_upgrade')
    expect(to9.error).toBeUndefined()
    const row = (i: number, last: string) => ({
      uuid: `u${i}`,
      org_id: 1,
      workload_id: 'w',
      direction: 'inbound',
      src_ip: '198.18.4.1',
      dst_ip: '198.18.4.2',
      src_port: null,
      port: 9000 + i,
      proto: 6,
      icmp_type: null,
      icmp_code: null,
      policy_decision: 'allowed',
      rule_href: null,
      num_connections: i,
      first_seen: last,
      last_seen: last,
      dropped_downstream: 0,
    })
    const rows = [
      row(1, '2026-06-01T00:00:00.000Z'),
      row(2, '2026-06-01T23:59:59.999Z'),
      row(3, '2026-06-02T08:00:00.000Z'),
    ]
    await db.insertInto('flow_summaries').values(rows).execute()
    const before = await db.selectFrom('flow_summaries').selectAll().orderBy('id').execute()
    await db.destroy()

    const dir = await mkdtemp(join(tmpdir(), 'palisade-mig-'))
    const opened = await openDb(url, dir)
    try {
      const after = await opened.db.selectFrom('flow_summaries').selectAll().orderBy('id').execute()
      expect(after).toEqual(before)
      const where = await sql<{ uuid: string; partition: string }>`select uuid,
        tableoid::regclass::text as partition from flow_summaries order by uuid`.execute(opened.db)
      expect(where.rows).toEqual([
        { uuid: 'u1', partition: 'flow_summaries_d20260601' },
        { uuid: 'u2', partition: 'flow_summaries_d20260601' },
        { uuid: 'u3', partition: 'flow_summaries_d20260602' },
      ])
      // New rows number on from the moved ones; a summary sent again is stored once.
      const more = { ...row(4, '2026-06-02T09:00:00.000Z') }
      for (let i = 0; i < 2; i++)
        await opened.db
          .insertInto('flow_summaries')
          .values(more)
          .onConflict((oc) => oc.doNothing())
          .execute()
      const ids = await opened.db.selectFrom('flow_summaries').select('id').orderBy('id').execute()
      expect(ids.map((r) => Number(r.id))).toEqual([
        ...before.map((r) => Number(r.id)),
        Math.max(...before.map((r) => Number(r.id))) + 1,
      ])
    } finally {
      await opened.changes?.close()
      await opened.db.destroy()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
