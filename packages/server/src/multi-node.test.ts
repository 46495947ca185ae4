import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from './app.js'
import { bootstrapOrg } from './bootstrap.js'
import { openDb } from './db/open.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import { caller, testContext } from './test-server.fixture.js'

/** Two server processes' worth of state (own app, own host-policy hub) on one PostgreSQL. */
describe('two servers on one PostgreSQL', () => {
  let pgServer: TestPostgres
  const nodes: { app: FastifyInstance; close: () => Promise<void> }[] = []
  let auth = ''
  let dir = ''

  beforeAll(async () => {
    pgServer = await startTestPostgres()
    const url = await pgServer.freshDatabase()
    dir = await mkdtemp(join(tmpdir(), 'palisade-mn-'))
    for (let i = 0; i < 2; i++) {
      const { db, writeLanes, changes } = await openDb(url, dir)
      const boot = await bootstrapOrg(db)
      if (boot)
        auth = `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`
      const app = await buildApp(testContext(db, writeLanes, changes))
      nodes.push({
        app,
        close: async () => (await app.close(), await changes?.close(), await db.destroy()),
      })
    }
  })

  afterAll(async () => {
    for (const n of nodes) await n.close()
    await pgServer?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves the same org from both, and a change made through one reaches agents connected to the other', async () => {
    const [a, b] = nodes.map((n) => n.app) as [FastifyInstance, FastifyInstance]
    const call = (
      app: FastifyInstance,
      method: 'GET' | 'POST' | 'PUT',
      url: string,
      body?: unknown,
    ) => caller(app, auth)(method, url, body)
    const label = (
      await call(a, 'POST', '/api/v2/orgs/1/labels', { key: 'role', value: 'mn' })
    ).json<{ href: string }>()
    expect((await call(b, 'GET', `/api/v2${label.href}`)).statusCode).toBe(200)
    const profile = (
      await call(b, 'POST', '/api/v2/orgs/1/pairing_profiles', {
        name: 'mn',
        enforcement_mode: 'full',
        labels: [{ href: label.href }],
      })
    ).json<{ href: string }>()
    const code = (await call(b, 'POST', `/api/v2${profile.href}/pairing_key`, {})).json<{
      activation_code: string
    }>()
    const agent = (
      await a.inject({
        method: 'POST',
        url: '/agent/v1/activate',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          activation_code: code.activation_code,
          hostname: 'mn1',
          interfaces: [{ name: 'eth0', address: '198.18.0.90' }],
        }),
      })
    ).json<{ agent_id: string; token: string }>()
    const policyUrl = (known: string) =>
      `/agent/v1/agents/${agent.agent_id}/policy?known=${known}&wait=10`
    const first = (
      await b.inject({ url: policyUrl(''), headers: { authorization: `Bearer ${agent.token}` } })
    ).json<{ hash: string }>()
    // the agent waits on server B (at most 10 s, then 304); the policy changes through server A
    const waiting = b.inject({
      url: policyUrl(first.hash),
      headers: { authorization: `Bearer ${agent.token}` },
    })
    const rs = (
      await call(a, 'POST', '/api/v2/orgs/1/sec_policy/draft/rule_sets', { name: 'mn', scopes: [] })
    ).json<{ href: string }>()
    await call(a, 'POST', `/api/v2${rs.href}/sec_rules`, {
      providers: [{ label: { href: label.href } }],
      consumers: [{ actors: 'ams' }],
      ingress_services: [{ port: 22, proto: 6 }],
    })
    expect((await call(a, 'POST', '/api/v2/orgs/1/sec_policy', {})).statusCode).toBe(201)
    const got = await waiting
    expect(got.statusCode).toBe(200)
    expect(got.json<{ hash: string }>().hash).not.toBe(first.hash)
  })
})
