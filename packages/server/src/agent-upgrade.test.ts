import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentBuild } from '@palisade/protocol'
import { checkStatusReply } from '@palisade/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentManifest } from './agent-package.js'
import { AGENT_MANIFEST } from './agent-package.js'
import { upgradeOrder } from './agent-upgrade.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'
import type { TestServer } from './test-server.fixture.js'
import { testServer } from './test-server.fixture.js'

const O = '/api/v2/orgs/1'
/** Stands for the one-file agent of release 0.2.0: the server serves bytes with a pinned hash. */
const RELEASE = Buffer.from('#!/bin/sh\necho 0.2.0\n')
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const MANIFEST: AgentManifest = {
  version: '0.2.0',
  node: 'v20.20.2',
  built_at: '2026-01-01T00:00:00Z',
  files: [
    {
      os: 'linux',
      arch: 'x64',
      file: 'palisade-agent-linux-x64',
      sha256: sha(RELEASE),
      size: RELEASE.length,
    },
  ],
}
const OLD: AgentBuild = { version: '0.1.0', arch: 'x64', sha256: 'ab'.repeat(32) }

describe('upgrade orders, as the server decides them', () => {
  const pkg = { manifest: MANIFEST }
  const order = { release: '0.2.0', sha256: sha(RELEASE), size: RELEASE.length }
  it.each([
    ['an agent on another build is ordered', pkg, '0.2.0', OLD, order],
    [
      'one from a checkout too (it says why it cannot)',
      pkg,
      '0.2.0',
      { ...OLD, sha256: null },
      order,
    ],
    ['no target, no order', pkg, null, OLD, undefined],
    ['the agent already runs it', pkg, '0.2.0', { ...OLD, sha256: sha(RELEASE) }, undefined],
    ['no build for its architecture', pkg, '0.2.0', { ...OLD, arch: 'arm64' as const }, undefined],
    ['the server now serves another release', pkg, '0.1.9', OLD, undefined],
    ['the server serves none', undefined, '0.2.0', OLD, undefined],
  ])('%s', (_what, p, target, build, expected) => {
    expect(upgradeOrder(p, target, build)).toEqual(expected)
  })
})

describe.each(['sqlite', 'postgres'])(
  'PUT /vens/upgrade and the orders agents receive, on %s',
  (dialect) => {
    let dir: string
    let s: TestServer
    let bare: TestServer
    let pg: TestPostgres | undefined
    beforeAll(async () => {
      if (dialect === 'postgres') pg = await startTestPostgres()
      dir = await mkdtemp(join(tmpdir(), 'palisade-agent-upgrade-'))
      const pkg = join(dir, 'dist')
      await mkdir(pkg)
      await mkdir(join(dir, 'empty'))
      await writeFile(join(pkg, 'palisade-agent-linux-x64'), RELEASE)
      for (const f of ['install.sh', 'palisade-agent.service']) await writeFile(join(pkg, f), '')
      await writeFile(join(pkg, AGENT_MANIFEST), JSON.stringify(MANIFEST))
      s = await testServer(pg && (await pg.freshDatabase()), undefined, { agentDir: pkg })
      bare = await testServer(undefined, undefined, { agentDir: join(dir, 'empty') })
    })
    afterAll(async () => {
      await s?.close()
      await bare?.close()
      await pg?.stop()
      await rm(dir, { recursive: true, force: true })
    })

    /** A paired agent: its id and a function that sends a status report as it. */
    const pair = async (hostname: string) => {
      const p = (await s.call('POST', `${O}/pairing_profiles`, { name: hostname })).json<{
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
          payload: JSON.stringify({ activation_code: code, hostname }),
        })
      ).json<{ agent_id: string; token: string }>()
      const report = (body: object) =>
        s.app.inject({
          method: 'POST',
          url: `/agent/v1/agents/${a.agent_id}/status`,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${a.token}` },
          payload: JSON.stringify(body),
        })
      return { id: a.agent_id, href: `/orgs/1/vens/${a.agent_id}`, report }
    }

    it('lists the release it serves, and none without an agent package', async () => {
      const r = await s.call('GET', `${O}/vens/releases`)
      expect(r.statusCode).toBe(200)
      expect(r.headers['x-total-count']).toBe('1')
      expect(r.json()).toEqual([
        {
          release: '0.2.0',
          node: 'v20.20.2',
          built_at: '2026-01-01T00:00:00Z',
          files: [{ arch: 'x64', sha256: sha(RELEASE), size: RELEASE.length }],
        },
      ])
      expect((await bare.call('GET', `${O}/vens/releases`)).json()).toEqual([])
    })

    it('refuses a release the server does not serve, and any release when it serves none', async () => {
      const a = await pair('refused')
      const r = await s.call('PUT', `${O}/vens/upgrade`, {
        release: '9.9.9',
        vens: [{ href: a.href }],
      })
      expect(r.statusCode).toBe(406)
      expect(r.json()).toEqual([
        {
          token: 'invalid_release',
          message:
            'release "9.9.9" is not the agent build this server serves (0.2.0); upgrade to 0.2.0, or package the release you want on the server',
        },
      ])
      const none = await bare.call('PUT', `${O}/vens/upgrade`, { release: '0.2.0', vens: [] })
      expect(none.statusCode).toBe(406)
      expect(none.json<{ message: string }[]>()[0]?.message).toMatch(
        /^this server serves no agent build \(none in .*\): run `npm run package`/,
      )
      const malformed = await s.call('PUT', `${O}/vens/upgrade`, { vens: 'all', colour: 1 })
      expect(malformed.statusCode).toBe(406)
      // Nothing was ordered: the agent is told nothing.
      expect((await a.report({ build: OLD })).statusCode).toBe(204)
    })

    it('orders the named agents, reports the others, audits it; each agent is told until it runs the release', async () => {
      const a = await pair('up1')
      const old = await pair('old1')
      const other = await pair('other1')
      const r = await s.call('PUT', `${O}/vens/upgrade`, {
        release: '0.2.0',
        vens: [{ href: a.href }, { href: old.href }, { href: '/orgs/1/vens/nosuch' }],
      })
      expect(r.statusCode, r.body).toBe(200)
      expect(r.json()).toEqual({
        release: '0.2.0',
        vens_upgraded: 2,
        errors: [{ token: 'invalid_ven', message: 'no such VEN', hrefs: ['/orgs/1/vens/nosuch'] }],
      })
      const events = (await s.call('GET', `${O}/events?event_type=agents.upgrade`)).json<
        { resource_changes: { resource: { ven: { href: string } } }[] }[]
      >()
      expect(events).toHaveLength(1)
      expect(events[0]?.resource_changes.map((c) => c.resource.ven.href).sort()).toEqual(
        [a.href, old.href].sort(),
      )

      const pending = async () =>
        (await s.call('GET', `${O}/vens?upgrade_pending=true`))
          .json<{ href: string }[]>()
          .map((v) => v.href)
          .sort()
      expect(await pending()).toEqual([a.href, old.href].sort())

      // The order, in the status reply, as the agent checks it.
      const told = await a.report({ build: OLD })
      expect(told.statusCode).toBe(200)
      expect(checkStatusReply(told.json())).toEqual({
        ok: true,
        value: { upgrade: { release: '0.2.0', sha256: sha(RELEASE), size: RELEASE.length } },
      })
      expect((await a.report({})).statusCode, 'a heartbeat without its build: no orders').toBe(204)
      expect((await other.report({ build: OLD })).statusCode, 'not ordered').toBe(204)
      // An agent from before upgrades never says what it runs, and gets the reply it knows.
      expect((await old.report({ applied: { version: 1, hash: 'ab' } })).statusCode).toBe(204)

      // Upgraded: the new build reports itself and is told nothing more; the VEN shows it.
      const now = { version: '0.2.0', arch: 'x64', sha256: sha(RELEASE) }
      expect((await a.report({ build: now })).statusCode).toBe(204)
      expect((await a.report({})).statusCode).toBe(204)
      const ven = (await s.call('GET', `${O}/vens/${a.id}`)).json<Record<string, unknown>>()
      expect(ven).toMatchObject({
        version: '0.2.0',
        target_release: '0.2.0',
        upgrade_pending: false,
      })
      const never = (await s.call('GET', `${O}/vens/${old.id}`)).json<Record<string, unknown>>()
      expect(never).toMatchObject({
        version: '0.1.0',
        target_release: '0.2.0',
        upgrade_pending: true,
      })
      expect(await pending()).toEqual([old.href])
      const newer = (await s.call('GET', `${O}/vens?version[gte]=0.2.0`))
        .json<{ href: string }[]>()
        .map((v) => v.href)
      expect(newer, 'the version filter reads what each agent reports').toEqual([a.href])
      const rest = (await s.call('GET', `${O}/vens?upgrade_pending=false`))
        .json<{ href: string }[]>()
        .map((v) => v.href)
      expect(rest).toContain(a.href)
      expect(rest).toContain(other.href)
      expect(rest).not.toContain(old.href)
    })

    it('does not order an agent that is being unpaired', async () => {
      const a = await pair('leaving')
      expect(
        (await s.call('PUT', `${O}/vens/unpair`, { vens: [{ href: a.href }] })).statusCode,
      ).toBe(204)
      const r = await s.call('PUT', `${O}/vens/upgrade`, {
        release: '0.2.0',
        vens: [{ href: a.href }],
      })
      expect(r.json()).toEqual({
        release: '0.2.0',
        vens_upgraded: 0,
        errors: [{ token: 'ven_unpairing', message: 'the VEN is being unpaired', hrefs: [a.href] }],
      })
      expect((await a.report({ build: OLD })).statusCode).toBe(204)
    })

    it('lists the route in the OpenAPI document', async () => {
      const doc = (await s.app.inject({ url: '/api/v2/openapi.json' })).json<{
        paths: Record<string, Record<string, unknown>>
      }>()
      expect(Object.keys(doc.paths['/api/v2/orgs/{org}/vens/upgrade'] ?? {})).toEqual(['put'])
    })
  },
)
