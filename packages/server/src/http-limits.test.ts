import { connect } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from './app.js'
import { EVENT_DETAILS_MAX } from './events/event-details.js'
import type { TestServer } from './test-server.fixture.js'
import { testContext, testServer } from './test-server.fixture.js'

/** Sends `chunks` on a raw connection, then nothing; resolves with all the server sent. */
function silentClient(port: number, chunks: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = ''
    const s = connect(port, '127.0.0.1', () => chunks.forEach((c) => s.write(c)))
    s.on('data', (d: Buffer) => (got += d.toString()))
    s.on('error', reject)
    s.on('close', () => resolve(got))
  })
}

describe('HTTP timeouts', () => {
  let app: FastifyInstance
  let port = 0
  let close: () => Promise<void>

  beforeAll(async () => {
    const s = await testServer()
    // the same store and routes, on a socket, with timeouts short enough to wait for
    app = await buildApp(testContext(s.db, 1), {
      timeouts: { headersMs: 300, requestMs: 600, keepAliveMs: 500 },
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    port = (app.server.address() as { port: number }).port
    close = async () => (await app.close(), await s.close())
  })
  afterAll(() => close())

  it('drops a client that never finishes its headers with a 408', async () => {
    const got = await silentClient(port, ['POST /agent/v1/activate HTTP/1.1\r\nHost: x\r\n'])
    expect(got).toMatch(/^HTTP\/1\.1 408/)
  })

  it('drops a client that sends its body a byte at a time and stops (the slow activation)', async () => {
    const got = await silentClient(port, [
      'POST /agent/v1/activate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
      '{',
    ])
    expect(got).toMatch(/^HTTP\/1\.1 408/)
  })

  it('closes a kept-alive connection left idle after its answer', async () => {
    const got = await silentClient(port, [
      'GET /api/v2/health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n',
    ])
    expect(got).toMatch(/^HTTP\/1\.1 200/)
    expect(got.match(/HTTP\/1\.1/g)).toHaveLength(1)
  })
})

describe('agent-channel bodies', () => {
  let s: TestServer
  let agent: { agent_id: string; token: string }

  beforeAll(async () => {
    s = await testServer()
    const profile = (
      await s.call('POST', '/api/v2/orgs/1/pairing_profiles', {
        name: 'limits',
        enforcement_mode: 'visibility_only',
      })
    ).json<{ href: string }>()
    const code = (await s.call('POST', `/api/v2${profile.href}/pairing_key`, {})).json<{
      activation_code: string
    }>()
    agent = (
      await s.app.inject({
        method: 'POST',
        url: '/agent/v1/activate',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          activation_code: code.activation_code,
          hostname: 'limits1',
          interfaces: [{ name: 'eth0', address: '198.18.0.77' }],
        }),
      })
    ).json()
  })
  afterAll(() => s.close())

  const post = (url: string, payload: string, token: string) =>
    s.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      payload,
    })

  it('refuses a large body with a bogus credential before parsing it (401, not the parse error)', async () => {
    // Not JSON: parsing it first would answer 406 invalid_json.
    const junk = '{'.repeat(15 * 1024 * 1024)
    const bogus = `${agent.agent_id}.${'0'.repeat(64)}`
    for (const what of ['status', 'events', 'flows', 'goodbye']) {
      const r = await post(`/agent/v1/agents/${agent.agent_id}/${what}`, junk, bogus)
      expect({ what, status: r.statusCode }).toEqual({ what, status: 401 })
      expect(r.json<{ token: string }[]>()[0]?.token).toBe('agent_authentication_required')
    }
  })

  it('takes a small activation body only (413 past 64 KiB)', async () => {
    const r = await s.app.inject({
      method: 'POST',
      url: '/agent/v1/activate',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ activation_code: 'x', hostname: 'h'.repeat(100 * 1024) }),
    })
    expect(r.statusCode).toBe(413)
    expect(r.json<{ token: string }[]>()[0]?.token).toBe('request_too_large')
  })

  it('stores an event whose details are too large as a bounded excerpt', async () => {
    const uuid = '6f1d5a8e-0000-4000-8000-000000000001'
    const r = await post(
      `/agent/v1/agents/${agent.agent_id}/events`,
      JSON.stringify(
        Array.from({ length: 3 }, (_, i) => ({
          uuid: uuid.replace(/1$/, String(i + 1)),
          event_type: 'agent.tampering',
          severity: 'warning',
          timestamp: new Date().toISOString(),
          details: { stderr: 'x'.repeat(14 * 1024) },
        })),
      ),
      agent.token,
    )
    expect(r.statusCode).toBe(204)
    const rows = await s.db
      .selectFrom('events')
      .select('notifications')
      .where('event_type', '=', 'agent.tampering')
      .execute()
    expect(rows).toHaveLength(3)
    for (const row of rows) {
      expect(row.notifications.length).toBeLessThan(EVENT_DETAILS_MAX + 200)
      expect(JSON.parse(row.notifications)).toMatchObject([
        { info: { truncated: true, bytes: 14 * 1024 + 13 } },
      ])
    }
  })
})
