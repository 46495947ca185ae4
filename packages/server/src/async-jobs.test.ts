import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pruneJobs } from './stores/jobs.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'
const EVENTS = 2500

describe('async collections', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await testServer()
    const t = new Date().toISOString()
    await s.db
      .insertInto('events')
      .values(
        Array.from({ length: EVENTS }, (_, i) => ({
          uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          org_id: 1,
          event_type: 'test.seed',
          severity: 'info',
          status: 'success',
          timestamp: t,
          created_by: '{"system":{}}',
          resource_changes: '[]',
          notifications: JSON.stringify([{ info: { i } }]),
          agent_id: null,
        })),
      )
      .execute()
  })
  afterAll(() => s.close())

  const asyncGet = async (url: string) => {
    const r = await s.call('GET', url, undefined, { prefer: 'respond-async' })
    expect(r.statusCode).toBe(202)
    const job = (await s.call('GET', `/api/v2${r.headers.location}`)).json<{
      href: string
      status: string
      result: { href: string }
    }>()
    return job
  }

  it('builds and sends a datafile a page at a time, the same items in the same order', async () => {
    const job = await asyncGet(`${O}/events?event_type=test.seed`)
    expect(job.status).toBe('done')
    const id = job.href.split('/').pop() ?? ''
    const chunks = await s.db
      .selectFrom('job_chunks')
      .select('seq')
      .where('job_id', '=', id)
      .execute()
    expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2])
    const file = await s.call('GET', `/api/v2${job.result.href}`)
    expect(file.statusCode).toBe(200)
    expect(file.headers['content-type']).toBe('application/json')
    const got = file.json<{ uuid: string }[]>().map((e) => e.uuid)
    const sync = (await s.call('GET', `${O}/events?event_type=test.seed&max_results=10000`)).json<
      { uuid: string }[]
    >()
    expect(got).toHaveLength(EVENTS)
    expect(got).toEqual(sync.map((e) => e.uuid))
  })

  it('sends an empty collection as an empty list', async () => {
    const job = await asyncGet(`${O}/events?event_type=none.such`)
    expect((await s.call('GET', `/api/v2${job.result.href}`)).json()).toEqual([])
  })

  it('removes jobs and their datafiles once a day old', async () => {
    const job = await asyncGet(`${O}/events?event_type=test.seed`)
    const id = job.href.split('/').pop() ?? ''
    expect(await pruneJobs(s.db, Date.now())).toBe(0)
    expect(await pruneJobs(s.db, Date.now() + 25 * 3_600_000)).toBeGreaterThanOrEqual(1)
    expect((await s.call('GET', `/api/v2${job.result.href}`)).statusCode).toBe(404)
    expect((await s.call('GET', `/api/v2${job.href}`)).statusCode).toBe(404)
    const left = await s.db.selectFrom('job_chunks').select('job_id').execute()
    expect(left.filter((c) => c.job_id === id)).toEqual([])
  })
})
