import BetterSqlite3 from 'better-sqlite3'
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

const labelWrite = (app: FastifyInstance, auth: string, value: string) =>
  caller(app, auth)('POST', '/api/v2/orgs/1/labels', { key: 'role', value })

describe('two servers on one PostgreSQL that restarts', () => {
  let pgServer: TestPostgres
  const nodes: { app: FastifyInstance; close: () => Promise<void> }[] = []
  const lost: unknown[] = []
  let auth = ''
  let dir = ''

  beforeAll(async () => {
    pgServer = await startTestPostgres()
    const url = await pgServer.freshDatabase()
    dir = await mkdtemp(join(tmpdir(), 'palisade-outage-'))
    for (let i = 0; i < 2; i++) {
      const { db, writeLanes } = await openDb(url, dir, (line) => lost.push(line))
      const boot = await bootstrapOrg(db)
      if (boot)
        auth = `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`
      const app = await buildApp(testContext(db, writeLanes))
      nodes.push({ app, close: async () => (await app.close(), await db.destroy()) })
    }
  })

  afterAll(async () => {
    for (const n of nodes) await n.close()
    await pgServer?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('answers 503 while the database is away, resumes on its own, and loses no acknowledged write', async () => {
    const apps = nodes.map((n) => n.app)
    const acknowledged: string[] = []
    let n = 0
    // Writes through both servers, in parallel, so each holds several pooled connections.
    const writeRound = async () =>
      Promise.all(
        apps.flatMap((app) =>
          Array.from({ length: 4 }, async () => {
            const value = `w${n++}`
            const r = await labelWrite(app, auth, value)
            if (r.statusCode === 201) acknowledged.push(value)
            return r
          }),
        ),
      )
    for (const r of await writeRound()) expect(r.statusCode).toBe(201)

    await pgServer.halt()
    const during = await writeRound()
    for (const r of during) {
      expect(r.statusCode).toBe(503)
      const [issue] = r.json<{ token: string; message: string }[]>()
      expect(issue?.token).toBe('database_unavailable')
      expect(issue?.message).toMatch(/retry shortly/)
      expect(r.headers['retry-after']).toBe('2')
    }
    // The idle connections the database ended were heard of, not left to end the process.
    expect(lost.length).toBeGreaterThan(0)

    await pgServer.resume()
    // Each server serves again without being restarted: the first writes may still meet a
    // connection from before, which fails with a 503 and is dropped from the pool.
    for (const app of apps) {
      let status = 0
      for (let attempt = 0; attempt < 20 && status !== 201; attempt++) {
        const value = `after${n++}`
        status = (await labelWrite(app, auth, value)).statusCode
        if (status === 201) acknowledged.push(value)
        else expect(status).toBe(503)
      }
      expect(status).toBe(201)
    }
    for (const r of await writeRound()) expect(r.statusCode).toBe(201)

    for (const app of apps) {
      const r = await caller(app, auth)('GET', '/api/v2/orgs/1/labels?key=role&max_results=1000')
      const values = new Set(r.json<{ value: string }[]>().map((l) => l.value))
      expect(acknowledged.filter((v) => !values.has(v))).toEqual([])
    }
    expect(acknowledged.length).toBeGreaterThanOrEqual(8 + 2 + 8)
  })
})

describe('a SQLite file locked by another process', () => {
  it('answers a write with a 503 that says so, and serves reads meanwhile', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-lock-'))
    const { db, writeLanes } = await openDb(undefined, dir)
    const boot = await bootstrapOrg(db)
    const app = await buildApp(testContext(db, writeLanes))
    const auth = `Basic ${Buffer.from(`${boot?.api_user}:${boot?.api_secret}`).toString('base64')}`
    const other = new BetterSqlite3(join(dir, 'palisade.db'))
    try {
      // (the key's first use is written; later reads within the minute write nothing)
      expect((await caller(app, auth)('GET', '/api/v2/orgs/1/labels')).statusCode).toBe(200)
      other.exec('begin exclusive')
      const r = await labelWrite(app, auth, 'locked')
      expect(r.statusCode).toBe(503)
      const [issue] = r.json<{ token: string; message: string }[]>()
      expect(issue?.token).toBe('database_unavailable')
      expect(issue?.message).toMatch(/locked by another process/)
      expect((await caller(app, auth)('GET', '/api/v2/orgs/1/labels')).statusCode).toBe(200)
      other.exec('rollback')
      expect((await labelWrite(app, auth, 'unlocked')).statusCode).toBe(201)
    } finally {
      other.close()
      await app.close()
      await db.destroy()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
