import { afterAll, beforeAll } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Kysely } from 'kysely'
import { buildApp } from './app.js'
import { bootstrapOrg } from './bootstrap.js'
import type { AppContext } from './context.js'
import { openDb } from './db/open.js'
import type { StoreChanges } from './db/pg-notifications.js'
import type { Database } from './db/schema.js'
import { hostPolicyServices } from './host-policy/services.js'
import { AsyncJobs } from './http.js'
import type { TestPostgres } from './postgres.fixture.js'
import { startTestPostgres } from './postgres.fixture.js'

export interface TestServer {
  readonly app: FastifyInstance
  readonly db: Kysely<Database>
  readonly auth: string
  /** A request with the admin's API key; `body` is sent as JSON. */
  call(
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>
  close(): Promise<void>
}

/** What a test server's routes are given, as `startServer` gives them. */
export function testContext(
  db: Kysely<Database>,
  writeLanes: number,
  changes?: StoreChanges,
): AppContext {
  return {
    db,
    ...hostPolicyServices(db, changes),
    jobs: new AsyncJobs(db),
    writeLanes,
    agentEndpoint: () => ({ address: '198.18.0.1', port: 8443 }),
  }
}

/** Requests to an app with an `Authorization` header; `body` is sent as JSON. */
export function caller(app: FastifyInstance, auth: string): TestServer['call'] {
  return (method, url, body, headers = {}) =>
    app.inject({
      method,
      url,
      headers: {
        authorization: auth,
        ...(body !== undefined && { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body !== undefined && {
        payload: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    })
}

/**
 * A real server on a real store (SQLite in a temporary dir, or the PostgreSQL URL given);
 * `files` names its CA and agent package, which a server finds in its data dir and dist/.
 */
export async function testServer(
  database?: string,
  ratePerMinute = 1_000_000,
  files: Pick<AppContext, 'caCertFile' | 'agentDir'> = {},
): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-test-'))
  const { db, writeLanes, changes } = await openDb(database, dir)
  const boot = await bootstrapOrg(db)
  if (!boot) throw new Error('the test database was not empty')
  const app = await buildApp(
    { ...testContext(db, writeLanes, changes), ...files },
    { ratePerMinute },
  )
  const auth = `Basic ${Buffer.from(`${boot.api_user}:${boot.api_secret}`).toString('base64')}`
  return {
    app,
    db,
    auth,
    call: caller(app, auth),
    close: async () => {
      await app.close()
      await changes?.close()
      await db.destroy()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * For the enclosing `describe`: a server on `dialect` (PostgreSQL in a private instance of its
 * own) before its tests, given to `use`, and everything closed after them.
 */
export function serverOn(dialect: 'sqlite' | 'postgres', use: (s: TestServer) => void): void {
  let s: TestServer | undefined
  let pgServer: TestPostgres | undefined
  beforeAll(async () => {
    if (dialect === 'postgres') pgServer = await startTestPostgres()
    s = await testServer(pgServer ? await pgServer.freshDatabase() : undefined)
    use(s)
  })
  afterAll(async () => {
    await s?.close()
    await pgServer?.stop()
  })
}
