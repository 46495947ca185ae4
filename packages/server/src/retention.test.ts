import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pruneEvents } from './stores/events.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const DAY = 86_400_000
const T0 = Date.parse('2026-12-01T00:00:00Z')

describe('event retention', () => {
  let s: TestServer
  beforeAll(async () => (s = await testServer()))
  afterAll(() => s.close())

  const seed = (org: number, ageDays: number, tag: string) =>
    s.db
      .insertInto('events')
      .values({
        uuid: `${tag}-${org}-${ageDays}`,
        org_id: org,
        event_type: 'test.retention',
        severity: 'info',
        status: 'success',
        timestamp: new Date(T0 - ageDays * DAY).toISOString(),
        created_by: '{"system":{}}',
        resource_changes: '[]',
        notifications: '[]',
        agent_id: null,
      })
      .execute()
  const left = async () =>
    (
      await s.db
        .selectFrom('events')
        .select('uuid')
        .where('event_type', '=', 'test.retention')
        .orderBy('uuid')
        .execute()
    ).map((r) => r.uuid)

  it("deletes each org's events past its /settings/events retention (90 days unset)", async () => {
    for (const age of [1, 3, 89, 91]) {
      await seed(1, age, 'e')
      await seed(2, age, 'e')
    }
    const put = await s.call('PUT', '/api/v2/orgs/1/settings/events', {
      audit_event_retention_seconds: 2 * 86_400,
    })
    expect(put.statusCode).toBe(204)
    expect(await pruneEvents(s.db, T0)).toBe(3 + 1)
    expect(await left()).toEqual(['e-1-1', 'e-2-1', 'e-2-3', 'e-2-89'])
    expect(await pruneEvents(s.db, T0)).toBe(0)
  })
})
